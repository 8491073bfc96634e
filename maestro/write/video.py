"""Write the mp4: H.264 video with the audio muxed in as AAC (PyAV; torchvision's write_video is gone)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

from maestro.types import Audio, Video

AAC_RATES = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000, 64000, 88200, 96000)


def soundtrack(audio: Audio) -> Audio:
    """The audio as AAC takes it: at most 2 channels (downmix), a rate AAC supports (else 48 kHz)."""
    samples, rate = audio.samples, audio.sample_rate
    if samples.shape[0] > 2:
        samples = samples.mean(dim=0, keepdim=True).repeat(2, 1)
    if rate not in AAC_RATES:
        import torchaudio.functional as AF

        samples, rate = AF.resample(samples, rate, 48000), 48000
    return Audio(samples=samples.contiguous(), sample_rate=rate, label=audio.label)


def write_mp4(path: str | Path, video: Video, audio: Audio | None, crf: int = 20) -> None:
    import av
    import numpy as np

    frames = video.frames.detach().cpu()
    t, h, w, _ = frames.shape
    # yuv420p needs even sizes: pad by one edge row/column if needed.
    if h % 2 or w % 2:
        import torch.nn.functional as F

        frames = F.pad(frames.permute(0, 3, 1, 2), (0, w % 2, 0, h % 2), mode="replicate").permute(0, 2, 3, 1)
        h, w = h + h % 2, w + w % 2
    rate = Fraction(video.fps).limit_denominator(1000)
    with av.open(str(path), mode="w", format="mp4") as container:
        vstream = container.add_stream("libx264", rate=rate, options={"crf": str(crf), "preset": "medium"})
        vstream.width, vstream.height, vstream.pix_fmt = w, h, "yuv420p"
        astream = None
        if audio is not None:
            track = soundtrack(audio)
            astream = container.add_stream("aac", rate=track.sample_rate)
            astream.layout = "stereo" if track.channels == 2 else "mono"
        for array in frames.numpy():
            for packet in vstream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(array), format="rgb24")):
                container.mux(packet)
        for packet in vstream.encode():
            container.mux(packet)
        if astream is not None:
            data = track.samples.numpy().astype(np.float32)
            block = 1024  # AAC frame size
            for start in range(0, data.shape[1], block):
                chunk = np.ascontiguousarray(data[:, start : start + block])
                frame = av.AudioFrame.from_ndarray(chunk, format="fltp", layout=astream.layout.name)
                frame.sample_rate = track.sample_rate
                frame.pts = start
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode():
                container.mux(packet)


def probe(path: str | Path) -> dict:
    """Codec names, durations and sizes of an mp4 (used by tests and the summary)."""
    import av

    with av.open(str(path)) as container:
        out: dict = {"duration": container.duration / 1e6 if container.duration else 0.0}
        for stream in container.streams:
            dur = float(stream.duration * stream.time_base) if stream.duration else None
            info = {"codec": stream.codec_context.name, "duration": dur}
            if stream.type == "video":
                info.update(width=stream.width, height=stream.height, frames=stream.frames,
                            fps=float(stream.average_rate) if stream.average_rate else None)
            elif stream.type == "audio":
                info.update(sample_rate=stream.rate, channels=stream.channels)
            out[stream.type] = info
    return out
