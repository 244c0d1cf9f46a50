// Parameter files in the format of Python's torch.save: a zip archive holding data.pkl (a pickled
// {name: tensor} dict) and one record per tensor. torch::pickle_save would tag containers with
// torch.jit._pickle.restore_type_tag, which torch.load's default weights_only=True rejects, so
// they are pickled untagged here (torch_save_bytes, which checkpoints use too). Written
// atomically: temporary file, fsync, rename.
#include "longnet/core/parameter_io.h"

#include <ATen/ATen.h>
#include <ATen/core/Dict.h>
#include <c10/util/Exception.h>
#include <caffe2/serialize/inline_container.h>
#include <fcntl.h>
#include <torch/csrc/jit/serialization/pickle.h>
#include <torch/csrc/jit/serialization/pickler.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include <sstream>
#include <utility>
#include <vector>

#include "longnet/core/file_util.h"
#include "longnet/core/zip_layout.h"

namespace longnet {

namespace {

// Every parameter, then every buffer, by its dotted name, in registration order.
std::vector<std::pair<std::string, at::Tensor>> named_tensors(const torch::nn::Module& m) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  for (const auto& p : m.named_parameters(/*recurse=*/true)) out.emplace_back(p.key(), p.value());
  for (const auto& b : m.named_buffers(/*recurse=*/true)) out.emplace_back(b.key(), b.value());
  return out;
}

std::string dir_of(const std::string& path) {
  auto slash = path.rfind('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : path.substr(0, slash);
}

// Writes all of bytes to fd; throws naming `tmp` on failure.
void write_all(int fd, const char* bytes, size_t size, const std::string& tmp) {
  size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    TORCH_CHECK(n >= 0, "parameters_save: writing ", tmp, " failed: ", std::strerror(errno));
    done += size_t(n);
  }
}

// value with every typed list (of ints, floats, bools, tensors: the Pickler writes those through
// torch.jit._pickle.build_*list, which torch.load's default refuses) made a plain list,
// recursively through dicts, lists and tuples.
c10::IValue plain_containers(const c10::IValue& v) {
  if (v.isList()) {
    c10::impl::GenericList out(c10::AnyType::get());
    for (const auto& x : v.toListRef()) out.push_back(plain_containers(x));
    return out;
  }
  if (v.isGenericDict()) {
    c10::impl::GenericDict out(c10::AnyType::get(), c10::AnyType::get());
    for (const auto& kv : v.toGenericDict()) out.insert(kv.key(), plain_containers(kv.value()));
    return out;
  }
  if (v.isTuple()) {
    std::vector<c10::IValue> elems;
    for (const auto& e : v.toTupleRef().elements()) elems.push_back(plain_containers(e));
    return c10::ivalue::Tuple::create(std::move(elems));
  }
  return v;
}

}  // namespace

std::vector<char> torch_save_bytes(const c10::IValue& value_in) {
  const c10::IValue value = plain_containers(value_in);
  std::vector<char> pickle;
  torch::jit::Pickler pickler(
      [&](const char* b, size_t n) { pickle.insert(pickle.end(), b, b + n); },
      /*tensor_table=*/nullptr, /*type_renamer=*/nullptr, /*memoized_class_types=*/nullptr,
      /*get_tensor_id=*/nullptr, /*tag_aggregates=*/false);
  pickler.protocol();
  pickler.pushIValue(value);
  pickler.stop();

  std::vector<char> out;
  caffe2::serialize::PyTorchStreamWriter zip([&](const void* b, size_t n) {
    out.insert(out.end(), static_cast<const char*>(b), static_cast<const char*>(b) + n);
    return n;
  });
  // The record names torch.load looks for: data/<storage key> and data.pkl.
  const auto& storages = pickler.tensorData();
  for (size_t i = 0; i < storages.size(); ++i) {
    auto data = torch::jit::getWriteableTensorData(storages[i]);
    zip.writeRecord("data/" + std::to_string(i), data.data(), data.sizeInBytes());
  }
  zip.writeRecord("data.pkl", pickle.data(), pickle.size());
  zip.writeEndOfFile();
  return out;
}

namespace {

// The torch.save archive of {name: tensor} into fd.
void archive_write(int fd, const std::vector<std::pair<std::string, at::Tensor>>& tensors,
                   const std::string& tmp) {
  c10::Dict<std::string, at::Tensor> dict;
  for (const auto& [name, t] : tensors) dict.insert(name, t.detach().cpu().contiguous());
  const auto bytes = torch_save_bytes(dict);
  write_all(fd, bytes.data(), bytes.size(), tmp);
}

}  // namespace

void parameters_save(const torch::nn::Module& m, const std::string& path) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = open_fresh(tmp);
  TORCH_CHECK(fd >= 0, "parameters_save: cannot create ", tmp, ": ", std::strerror(errno));
  try {
    archive_write(fd, named_tensors(m), tmp);
    // The data must be on disk before the rename makes it visible under `path`.
    TORCH_CHECK(::fsync(fd) == 0, "parameters_save: flushing ", tmp,
                " failed: ", std::strerror(errno));
  } catch (...) {
    ::close(fd);
    std::remove(tmp.c_str());
    throw;
  }
  int close_rc = ::close(fd);
  int close_errno = errno;
  if (close_rc != 0 || std::rename(tmp.c_str(), path.c_str()) != 0) {
    int err = close_rc != 0 ? close_errno : errno;
    std::remove(tmp.c_str());
    TORCH_CHECK(false, "parameters_save: ", close_rc != 0 ? "closing " : "renaming ", tmp,
                close_rc != 0 ? "" : " to " + path, " failed: ", std::strerror(err));
  }
  // Persist the rename itself (best effort: some file systems refuse to fsync a directory).
  int dfd = ::open(dir_of(path).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

namespace {
std::string tensor_outside_storage(const at::Tensor& t) {
  if (!t.has_storage()) return "a tensor without storage";
  if (t.storage_offset() < 0) return "a negative storage offset";
  __int128 last = t.storage_offset();  // the last element's index in the storage
  bool empty = false;
  for (int64_t d = 0; d < t.dim(); ++d) {
    if (t.size(d) < 0 || t.stride(d) < 0) return "a negative size or stride";
    if (t.size(d) == 0) empty = true;
    last += __int128(t.size(d) - 1) * __int128(t.stride(d));
    if (last > (__int128(1) << 80)) return "a size or stride far past its storage";
  }
  if (empty) return "";
  const __int128 need = (last + 1) * __int128(t.element_size());
  if (need > __int128(t.storage().nbytes()))
    return "shape " + c10::str(t.sizes()) + ", strides " + c10::str(t.strides()) + " and offset " +
           std::to_string(t.storage_offset()) + " reach past its storage of " +
           std::to_string(t.storage().nbytes()) + " bytes";
  return "";
}

std::string outside_storage(const c10::IValue& v, const std::string& where, int depth) {
  if (depth > 64) return where + ": nested deeper than any checkpoint";
  auto at = [&](const std::string& inner) { return where.empty() ? inner : where + inner; };
  if (v.isTensor()) {
    const std::string why = tensor_outside_storage(v.toTensor());
    return why.empty() ? "" : (where.empty() ? "a tensor" : where) + ": " + why;
  }
  if (v.isGenericDict()) {
    for (const auto& kv : v.toGenericDict()) {
      const std::string key = kv.key().isString() ? kv.key().toStringRef() : kv.key().tagKind();
      std::string why = outside_storage(kv.value(), at(where.empty() ? key : "." + key), depth + 1);
      if (!why.empty()) return why;
    }
  } else if (v.isList() || v.isTuple()) {
    const auto items = v.isList() ? v.toListRef().vec() : v.toTupleRef().elements().vec();
    for (size_t i = 0; i < items.size(); ++i) {
      std::string why = outside_storage(items[i], at("[" + std::to_string(i) + "]"), depth + 1);
      if (!why.empty()) return why;
    }
  }
  return "";
}
}  // namespace

std::string tensors_outside_storage(const c10::IValue& value) {
  return outside_storage(value, "", 0);
}

void parameters_load(torch::nn::Module& m, const std::string& path) {
  ::close(file_open_regular(path, "parameters file", nullptr));  // no FIFO or device: refused
  std::ifstream in(path, std::ios::binary);
  TORCH_CHECK(in, "parameters_load: cannot open ", path, ": ", std::strerror(errno));
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t end_record = zip_end_record(bytes);
  const bool safetensors = bytes.size() >= 9 && bytes[8] == '{';  // u64 header size, JSON
  TORCH_CHECK(end_record != std::string::npos, "parameters_load: ", path,
              safetensors ? " looks like a safetensors file (as `longnet export` writes), which "
                            "longnet does not load: give the checkpoint it was exported from, or a "
                            "parameters file"
                          : " is not a parameter file (no zip end record: not a torch.save "
                            "archive, or cut short)");
  const std::string layout = zip_layout_error(bytes, end_record);
  TORCH_CHECK(layout.empty(), "parameters_load: ", path,
              " is corrupted (its zip layout is broken: ", layout, ")");
  c10::IValue v;
  try {
    v = torch::jit::pickle_load(bytes);
  } catch (const c10::Error& e) {
    // LibTorch's own reason, where it is one (not an internal assertion, which asks to report a
    // bug to PyTorch: it is how LibTorch meets Python's OrderedDict, among others).
    std::string why = e.what_without_backtrace();
    why = why.substr(0, why.find('\n'));
    const std::string ordered = "OrderedDict";
    const bool ordered_dict =
        std::search(bytes.begin(), bytes.end(), ordered.begin(), ordered.end()) != bytes.end();
    TORCH_CHECK(false, "parameters_load: ", path,
                ordered_dict ? " holds an OrderedDict (as torch.save(model.state_dict()) writes), "
                               "which LibTorch cannot read: save dict(model.state_dict()) instead"
                             : " is not a parameter file (torch.save format of a {name: tensor} "
                               "dict; from Python save dict(model.state_dict()))",
                ordered_dict || why.find("INTERNAL ASSERT") != std::string::npos ? "" : ": " + why);
  }
  TORCH_CHECK(v.isGenericDict(), "parameters_load: ", path,
              " does not hold a {name: tensor} dict but a ", v.tagKind());
  const std::string outside = tensors_outside_storage(v);
  TORCH_CHECK(outside.empty(), "parameters_load: ", path, " is corrupted (", outside,
              "): its pickle was edited or damaged");

  std::map<std::string, at::Tensor> file;
  for (const auto& e : v.toGenericDict()) {
    TORCH_CHECK(e.key().isString() && e.value().isTensor(), "parameters_load: ", path,
                " holds an entry that is not name -> tensor (", e.key().tagKind(), " -> ",
                e.value().tagKind(), ")");
    file[e.key().toStringRef()] = e.value().toTensor();
  }
  const auto model = named_tensors(m);

  // Check everything first so that a bad file leaves the model as it was.
  std::vector<std::string> missing, unexpected;
  for (const auto& [name, t] : model)
    if (!file.count(name)) missing.push_back(name);
  std::set<std::string> in_model;
  for (const auto& [name, t] : model) in_model.insert(name);
  for (const auto& [name, t] : file)
    if (!in_model.count(name)) unexpected.push_back(name);
  auto list = [](const std::vector<std::string>& names) {
    std::ostringstream s;
    for (size_t i = 0; i < names.size() && i < 8; ++i)
      s << (i ? ", " : "") << "'" << names[i] << "'";
    if (names.size() > 8) s << ", ... (" << names.size() << " in all)";
    return s.str();
  };
  TORCH_CHECK(missing.empty(), "parameters_load: ", path, " lacks ", missing.size(),
              " parameter(s) of the model: ", list(missing));
  TORCH_CHECK(unexpected.empty(), "parameters_load: ", path, " holds ", unexpected.size(),
              " parameter(s) the model does not have: ", list(unexpected));
  for (const auto& [name, t] : model) {
    TORCH_CHECK(t.sizes() == file[name].sizes(), "parameters_load: parameter '", name,
                "' has shape ", t.sizes(), " in the model but ", file[name].sizes(), " in ", path);
    TORCH_CHECK(file[name].is_floating_point() == t.is_floating_point(),
                "parameters_load: ", "parameter '", name, "' is ", file[name].scalar_type(), " in ",
                path, " but the model's is ", t.scalar_type(),
                ": not a parameter file of this model (integer tensors would be cast silently)");
  }

  torch::NoGradGuard no_grad;
  for (const auto& [name, t] : model) t.copy_(file[name]);
}

}  // namespace longnet
