// A module's parameters and buffers as a file that Python reads with `torch.load(path)` into a
// {name: tensor} dict (the names of named_parameters() / named_buffers()), and back. For model
// exchange with PyTorch; full training checkpoints (optimizer, step, RNG) live in train/.
#pragma once

#include <torch/nn/module.h>

#include <ATen/core/ivalue.h>

#include <string>
#include <vector>

namespace longnet {

// The bytes Python's torch.save writes for `value` (tensors on the CPU; dicts, lists, tuples,
// strings, numbers, bools, None), pickled without TorchScript type tags, so that
// torch.load(path) with its default weights_only=True reads them; torch::pickle_load reads them
// back too (containers then come back untyped).
std::vector<char> torch_save_bytes(const c10::IValue& value);

// The first tensor in `value` (dicts, lists and tuples walked) whose view reaches outside its
// storage (a negative size, stride or offset, or elements past the storage's bytes: a file whose
// pickle was edited), as "ENTRY: what is wrong"; "" when every tensor lies inside its storage.
// LibTorch's unpickler builds such views unchecked, and reading one reads foreign memory.
std::string tensors_outside_storage(const c10::IValue& value);

// Writes every parameter and buffer of m (detached, on the CPU, in its dtype) to `path`. Writes a
// temporary file beside it first and renames it over `path`, so a crash never leaves a
// half-written file there. Throws c10::Error naming the path on I/O failure.
void parameters_save(const torch::nn::Module& m, const std::string& path);

// Reads a file written by parameters_save, or by Python's torch.save of a plain {name: tensor}
// dict, into m's parameters and buffers, converting dtype and device to m's. (LibTorch cannot
// unpickle an OrderedDict: from Python, save dict(model.state_dict()).) Checks everything before
// changing anything: a name in m but not in the file, a name in the file but not in m, or a shape
// mismatch throws c10::Error naming the parameter, both shapes and the file, and leaves m as it
// was.
void parameters_load(torch::nn::Module& m, const std::string& path);

}  // namespace longnet
