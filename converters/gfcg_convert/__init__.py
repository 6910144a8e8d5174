"""gfcg's model converters: published weights -> gfcg packs (docs/pack-format.md).

The shipped Python of the project, installed under libexec/gfcg/converters by
manager/meson.build and run by `gfcg models fetch` through the two entry
scripts next to this package (converters/convert-edm2, convert-classifier).
It reads pickles and TFLite flatbuffers without executing anything from them.

Modules: edm2_pickle (NVIDIA EDM2 snapshots), sd_decoders (SD VAE and TAESD
safetensors), classifier_pack (attach a classifier to a pack) with
torchvision_to_safetensors and tflite_to_safetensors, and nets/ (the network
definitions that give each pack tensor its expected name and shape).

Importing the package imports nothing heavy: torch is loaded by the modules
that need it, when they need it.
"""
