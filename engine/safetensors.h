// Safetensors files, read and written by our own code: an 8-byte little-endian header length, a JSON
// header (per tensor: dtype, shape, data_offsets; "__metadata__": string→string) and the raw
// little-endian tensor bytes. Checkpoints use this format; tests/engine/test_safetensors.cpp covers it.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "engine/tensor.h"

namespace scpn {

struct NamedTensor {
  std::string name;
  Tensor tensor;
};

// The header's "__metadata__": the format allows only string values.
using SafetensorsMetadata = std::map<std::string, std::string>;

// The format's dtype names: F32, F64, BF16, F16, I32, I64, U8 (the dtypes the engine has).
const char* safetensors_dtype_name(DType dtype);

// ---- writing -----------------------------------------------------------------------------------------

// Writes `tensors` (any device; copied to the CPU one at a time) and `metadata` to `path`, atomically:
// the bytes go to `path.tmp.<pid>` in the same folder, which is fsynced and renamed over `path`, then
// the folder is fsynced. The header keeps the given tensor order; the data section stores the tensors
// by element size, largest first (stable), so every tensor starts naturally aligned (the data section
// itself starts 8-byte aligned: the JSON is padded with spaces). Names must be unique, non-empty and
// not "__metadata__"; the metadata is omitted from the header when empty.
// Errors (scpn::Error) name the path and, for I/O, the errno text; on error no temporary file is left
// and an existing file at `path` is unchanged.
// `before_commit`, when set, is called with the temporary file's path once every byte is written, before
// the sync and the rename: the seam through which tests pause inside a write (to kill the process there)
// or make it fail (an exception it throws propagates, and the temporary file is removed).
void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const SafetensorsMetadata& metadata = {},
                      const std::function<void(const std::string& temporary)>& before_commit = {});

// ---- reading -----------------------------------------------------------------------------------------

// One tensor as the header describes it.
struct SafetensorsEntry {
  std::string name;
  DType dtype = DType::f32;
  Shape shape;
  uint64_t begin = 0, end = 0;  // byte range [begin, end) relative to the start of the data section
};

struct SafetensorsHeader {
  std::string path;
  SafetensorsMetadata metadata;
  std::vector<SafetensorsEntry> entries;  // in the header's order
  uint64_t data_start = 0;                // file offset of the data section (8 + header length)
  uint64_t data_bytes = 0;                // size of the data section
};

// Limits of the reader, checked from the header before any tensor memory is allocated: the header's length
// (the reference implementation's limit) and each tensor's byte size (no tensor of a model this engine
// trains comes near 8 GiB; a larger claim is a corrupt or hostile header). Together with the rule that the
// tensors tile the file exactly, no header can make the reader allocate more than the file holds.
inline constexpr uint64_t kSafetensorsMaxHeaderBytes = 100'000'000;
inline constexpr uint64_t kSafetensorsMaxTensorBytes = uint64_t(8) << 30;  // 8 GiB

// Reads and validates the header only (no tensor data): the file is at least 8 bytes, the header length
// is at most kSafetensorsMaxHeaderBytes and inside the file, the header is a JSON object without
// duplicate keys, every entry has a known dtype, a shape of at most 8 non-negative dimensions and
// data_offsets [begin, end] whose size equals numel·element size and is at most
// kSafetensorsMaxTensorBytes, and the entries tile the data section exactly (no overlap, no hole, no byte
// past the last tensor, none missing: a truncated file is refused here). Unknown keys inside an entry
// are ignored, as the reference implementation does.
// Errors read "<path>: tensor '<name>': <reason>" (or "<path>: <reason>" when no tensor is concerned).
SafetensorsHeader read_safetensors_header(const std::string& path);

struct SafetensorsFile {
  std::string path;
  SafetensorsMetadata metadata;
  std::vector<NamedTensor> tensors;  // in the header's order; contiguous CPU tensors

  const Tensor* find(const std::string& name) const;  // nullptr when absent
  const Tensor& at(const std::string& name) const;    // error "<path>: tensor '<name>': not in the file"
};

// read_safetensors_header, then each tensor's bytes straight into its own CPU tensor (the file is
// never held in memory as a whole besides the tensors).
SafetensorsFile read_safetensors(const std::string& path);

// ---- loading into existing tensors (a model's parameters and buffers) -------------------------------

struct LoadIntoOptions {
  bool allow_missing = false;  // a target without a tensor in the file keeps its values
  bool allow_extra = false;    // a file tensor without a target is skipped
  // Metadata entries the file must hold with exactly these values (e.g. the architecture).
  SafetensorsMetadata require_metadata = {};
};

struct LoadIntoReport {
  std::vector<std::string> loaded, missing, extra;  // names, sorted
};

// Copies file tensors into `targets` (name → tensor on any device; its storage is overwritten in
// place, so views and parameter arenas see the new values). Everything is checked first — required
// metadata, then each target's presence, dtype (no conversion) and shape, then tensors without a
// target — and nothing is copied unless all checks pass: on error every target is untouched.
// Errors: "<path>: tensor 'w': shape [64, 3] in file, [32, 3] expected", "... dtype F16 in file, F32
// expected", "...: missing from the file", "...: in the file but not expected", "<path>: metadata 'k'
// is 'a' in file, 'b' expected" (or "missing from the file, 'b' expected"); when several tensors are
// wrong, the first (by name) is described and " (and N more mismatching tensors)" is appended.
LoadIntoReport load_into(const SafetensorsFile& file, const std::map<std::string, Tensor>& targets,
                         const LoadIntoOptions& options = {});
// Same from a path: validates the header, checks, then reads only the tensors that will be copied.
LoadIntoReport load_into(const std::string& path, const std::map<std::string, Tensor>& targets,
                         const LoadIntoOptions& options = {});

}  // namespace scpn
