"""Built-in audio encoders."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
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
                "clip_seconds": Option(float, 2.0, "seconds per clip; the last clip is zero-padded", ge=0.1, le=60),
                "n_mels": Option(int, 32, "mel bands", ge=1, le=256),
                "tokens_per_second": Option(float, 50.0, "analysis frames (tokens) per second", ge=1, le=1000),
            },
            license="Apache-2.0",
        )
    )
