"""Our FIFO sampler against FIFO-Diffusion's own sampling loop, on the tiny random VideoCrafter2 UNet.

tests/data/fifo_reference.pt holds what their loop (jjihwan/FIFO-Diffusion_public, commit in the file) produced from a
queue it prepared, with the noise it drew; tests/data/fifo_make_reference.py says how and makes it again. Here our
`FifoSampler` starts from the same queue with the same noise and must leave the same frames.
"""

from __future__ import annotations

import importlib.util
from itertools import islice
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("maestro_videocrafter")

from maestro_videocrafter.fifo import FifoPlan, FifoSampler, QueuedFrame  # noqa: E402

DATA = Path(__file__).parent / "data"

pytestmark = pytest.mark.usefixtures("one_thread")


def _maker():
    spec = importlib.util.spec_from_file_location("fifo_make_reference", DATA / "fifo_make_reference.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # imports torch and maestro only; their code is imported by its main()
    return module


@pytest.fixture(scope="module")
def reference():
    return torch.load(DATA / "fifo_reference.pt", weights_only=True)


@pytest.fixture(scope="module")
def maker():
    return _maker()


@pytest.mark.parametrize("case", ["lookahead", "partitions"])
def test_fifo_sampler_leaves_the_frames_fifo_diffusions_loop_leaves(reference, maker, case):
    frames, partitions, lookahead, eta, cfg, new_length = reference[case]["case"]
    plan = FifoPlan(int(frames), int(partitions), bool(lookahead))
    sched, _ = maker.schedule()
    sampler = FifoSampler(sched, plan, float(eta))
    assert torch.equal(sampler.params.timesteps.flip(0), reference[case]["timesteps"].long())  # the same levels

    unet = maker.tiny_unet()
    context, uncond, fps = reference["context"], reference["uncond"], reference["fps"]

    def denoise(x, members):
        t = torch.tensor([sampler.timestep(f.level) for f in members])
        e_cond, e_uncond = unet(x, t, context, fps), unet(x, t, uncond, fps)
        return e_uncond + cfg * (e_cond - e_uncond)

    initial = reference[case]["initial"]  # their queue, lookahead context first: level = position - context
    queue = [QueuedFrame(p - plan.context, p - plan.context, initial[:, :, p:p + 1].clone())
             for p in range(initial.shape[2])]
    expected = reference[case]["outputs"]  # [iterations, 1, c, h, w]: the frame leaving at each iteration
    generator = torch.Generator().manual_seed(int(reference["noise_seed"]))
    with torch.inference_mode():
        run = sampler.run(denoise, 10**6, tuple(initial.shape[i] for i in (1, 3, 4)), generator, queue=queue)
        got = torch.stack([f.latent[:, :, 0] for f in islice(run, expected.shape[0])])
    assert got.shape == expected.shape
    # Float32 rounding apart (their coefficients are float32 tensors, ours doubles), to 1e-5 of the frames' scale: the
    # random tiny UNet lets the latents grow to ~70, and rounding differences grow with them from frame to frame.
    # A wrong level, window or noise draw anywhere shows as differences of order 1 or more.
    scale = float(expected.abs().max())
    assert scale > 1.0
    assert float((got - expected).abs().max()) <= 1e-5 * scale
    assert torch.equal(got[0], expected[0])  # the first frame out: one step from their queue, bit for bit
