// Registers longnet's ops with the PyTorch dispatcher so Python users get them as
// torch.ops.longnet.* after torch.ops.load_library("build/liblongnet_ops.so").
#include <torch/library.h>

TORCH_LIBRARY(longnet, m) {}
