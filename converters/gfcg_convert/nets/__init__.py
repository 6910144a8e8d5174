"""The network definitions, in PyTorch, whose state_dict keys are the pack
tensor names: edm2 (the EDM2 denoiser), vae (the SD VAE decoder) and taesd
(the TAESD decoder).

The converters build them on the meta device to check every tensor's name and
shape; the PyTorch reference of tests/reference/ and the training of
research/train/ run the same definitions, so there is one copy of each.
"""
