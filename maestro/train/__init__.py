"""`maestro train cim`: train the Condition Injection Module the way the paper did, on Hugging Face accelerate.

Frames are treated as images of a frozen Stable Diffusion 2.1; per frame, the CIM's tokens replace rows 1..N of the
empty prompt's OpenCLIP embedding and the UNet denoises with that context. Loss = 0.9 x denoising MSE + 0.1 x MSE
between that context and the OpenCLIP embedding of the clip's class label. Audio tokens, VAE moments and text embeddings are
computed once and cached, so training holds only the UNet and the CIM.

Modules: `config` (options, no torch), `data` (finding and reading training items), `models` (Stable Diffusion parts,
the OpenCLIP text embedder, tiny random stand-ins), `features` (the cache), `objective` (the loss), `loop` (accelerate).
"""
