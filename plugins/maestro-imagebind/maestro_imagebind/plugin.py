"""Registration only: cheap, no torch. `maestro_imagebind.encoder` is imported when the encoder is used."""

from maestro.hookspecs import hookimpl
from maestro.options import Option
from maestro.registry import ComponentSpec


@hookimpl
def register_audio_encoders(register):
    register(
        ComponentSpec(
            name="imagebind",
            kind="audio_encoder",
            factory="maestro_imagebind.encoder:ImageBindAudioEncoder",
            summary="the paper's encoder: ImageBind-huge audio branch, 229 tokens x 768 per 2 s clip (pre-pooling)",
            packages=("torch", "torchaudio"),
            weights=("imagebind_huge",),
            gpu="optional",
            license="CC BY-NC-SA 4.0 (ImageBind weights: non-commercial, share-alike)",
            options={
                "weights": Option(str, None, "path to imagebind_huge.pth (none: the cached registry file "
                                  "`imagebind_huge`)"),
                "config": Option(str, None, "JSON text or a .json file overriding the audio branch: embed_dim, "
                                 "num_blocks, num_heads, mlp_ratio, num_mel_bins, target_len, kernel_size, stride, "
                                 "drop_path (none: ImageBind-huge)"),
                "head_norm": Option(bool, False, "true: also apply the audio head's LayerNorm to the tokens; false "
                                    "returns the trunk output, which is what the paper's CIM was trained on"),
                "clip_batch": Option(int, 8, "clips per forward pass", ge=1, le=1024),
                "profile": Option(str, "maestro", "paper: the clips of the paper's released code (channel 0, "
                                  "int(duration // 2) clips spread over the first 10 s by pytorchvideo's "
                                  "ConstantClipsPerVideoSampler; sources of at least 2 s); maestro: consecutive 2 s "
                                  "clips of the whole source, channels averaged", choices=("maestro", "paper")),
            },
        )
    )
