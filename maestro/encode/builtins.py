"""Built-in audio encoders."""

from maestro.hookspecs import hookimpl
from maestro.registry import ComponentSpec


@hookimpl
def register_audio_encoders(register):
    register(
        ComponentSpec(
            name="spectral",
            kind="audio_encoder",
            factory="maestro.encode.spectral:SpectralEncoder",
            summary="DSP tokens: log-mel bands, loudness, onset strength and centroid per frame, in 2 s clips",
            options={
                "clip_seconds": "seconds per clip (default 2.0); the last clip is zero-padded",
                "n_mels": "mel bands (default 32)",
                "tokens_per_second": "analysis frames (tokens) per second (default 50)",
            },
            license="Apache-2.0",
        )
    )
