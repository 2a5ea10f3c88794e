// Safetensors reader and writer. POSIX I/O (pread, fsync, rename) so every failure has an errno to
// report and a write can be made atomic; nlohmann/json parses and prints the header. The format and the
// guarantees are documented in engine/safetensors.h.
#include "engine/safetensors.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <filesystem>
#include <limits>
#include <nlohmann/json.hpp>
#include <numeric>
#include <set>
#include <system_error>

#include "kernels/context.h"  // kMaxDims

namespace scpn {

static_assert(std::endian::native == std::endian::little,
              "safetensors data is little-endian: a big-endian host would need byte swaps here");

namespace {

using Json = nlohmann::ordered_json;  // keeps the header's key order, so tensors come back in it

constexpr const char* kSupportedDtypes = "F32, F64, BF16, F16, I32, I64, U8";

std::string errno_text(int err) { return std::error_code(err, std::generic_category()).message(); }

bool dtype_from_name(const std::string& name, DType& out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::f32}, {"F64", DType::f64}, {"BF16", DType::bf16}, {"F16", DType::f16},
      {"I32", DType::i32}, {"I64", DType::i64}, {"U8", DType::u8}};
  for (const auto& [text, dtype] : table)
    if (name == text) {
      out = dtype;
      return true;
    }
  return false;
}

std::string offsets_str(uint64_t begin, uint64_t end) { return cat("[", begin, ", ", end, "]"); }

// Closes the descriptor on every way out of a function; close() reports the error of an explicit close.
class FileDescriptor {
 public:
  explicit FileDescriptor(int fd) : fd_(fd) {}
  ~FileDescriptor() {
    if (fd_ >= 0) ::close(fd_);
  }
  FileDescriptor(const FileDescriptor&) = delete;
  FileDescriptor& operator=(const FileDescriptor&) = delete;
  int get() const { return fd_; }
  int close() {  // 0 or the errno
    int rc = ::close(fd_);
    fd_ = -1;
    return rc == 0 ? 0 : errno;
  }

 private:
  int fd_;
};

// Removes a temporary file unless the write that owns it completed.
class TemporaryFile {
 public:
  explicit TemporaryFile(std::string path) : path_(std::move(path)) {}
  ~TemporaryFile() {
    if (!committed_) ::unlink(path_.c_str());
  }
  TemporaryFile(const TemporaryFile&) = delete;
  TemporaryFile& operator=(const TemporaryFile&) = delete;
  void commit() { committed_ = true; }

 private:
  std::string path_;
  bool committed_ = false;
};

// 0 or the errno. Loops over partial writes (large buffers, signals).
int write_all(int fd, const void* data, size_t n) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t written = ::write(fd, p, n);
    if (written < 0) {
      if (errno == EINTR) continue;
      return errno;
    }
    p += written;
    n -= size_t(written);
  }
  return 0;
}

// Reads exactly n bytes at offset or throws "<path>: <what>: <reason>".
void read_exact(const std::string& path, int fd, void* dst, uint64_t n, uint64_t offset, const std::string& what) {
  char* p = static_cast<char*>(dst);
  while (n > 0) {
    ssize_t got = ::pread(fd, p, size_t(n), off_t(offset));
    if (got < 0) {
      if (errno == EINTR) continue;
      throw Error(cat(path, ": ", what, ": read failed: ", errno_text(errno)));
    }
    if (got == 0) throw Error(cat(path, ": ", what, ": unexpected end of file (did the file change while being read?)"));
    p += got;
    n -= uint64_t(got);
    offset += uint64_t(got);
  }
}

int open_for_reading(const std::string& path, uint64_t& size) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw Error(cat(path, ": cannot open: ", errno_text(errno)));
  struct stat st {};
  if (::fstat(fd, &st) != 0) {
    int err = errno;
    ::close(fd);
    throw Error(cat(path, ": cannot stat: ", errno_text(err)));
  }
  if (!S_ISREG(st.st_mode)) {
    ::close(fd);
    throw Error(cat(path, ": not a regular file"));
  }
  size = uint64_t(st.st_size);
  return fd;
}

// ---- header parsing ------------------------------------------------------------------------------------

SafetensorsMetadata parse_metadata(const std::string& path, const Json& value) {
  if (!value.is_object()) throw Error(cat(path, ": __metadata__ is not a JSON object"));
  SafetensorsMetadata metadata;
  for (const auto& [key, v] : value.items()) {
    if (!v.is_string()) throw Error(cat(path, ": __metadata__ value of '", key, "' is not a string"));
    metadata[key] = v.get<std::string>();
  }
  return metadata;
}

SafetensorsEntry parse_entry(const std::string& path, const std::string& name, const Json& value) {
  auto refuse = [&](const auto&... reason) { return Error(cat(path, ": tensor '", name, "': ", reason...)); };
  if (!value.is_object()) throw refuse("header entry is not a JSON object");
  SafetensorsEntry e;
  e.name = name;

  auto dtype = value.find("dtype");
  if (dtype == value.end() || !dtype->is_string()) throw refuse("\"dtype\" is missing or not a string");
  if (!dtype_from_name(dtype->get<std::string>(), e.dtype))
    throw refuse("unknown dtype '", dtype->get<std::string>(), "' (supported: ", kSupportedDtypes, ")");

  auto shape = value.find("shape");
  if (shape == value.end() || !shape->is_array()) throw refuse("\"shape\" is missing or not an array");
  for (const Json& d : *shape) {
    if (!d.is_number_integer()) throw refuse("\"shape\" holds something other than integers");
    if (d.is_number_unsigned() && d.get<uint64_t>() > uint64_t(std::numeric_limits<int64_t>::max()))
      throw refuse("shape dimension ", d.get<uint64_t>(), " is too large");
    e.shape.push_back(d.get<int64_t>());
  }
  if (e.shape.size() > size_t(kMaxDims))
    throw refuse("shape ", shape_str(e.shape), " has more than ", kMaxDims, " dimensions");
  // The byte size, with overflow checks: a corrupt shape must not wrap around to a plausible size.
  for (int64_t d : e.shape)
    if (d < 0) throw refuse("shape ", shape_str(e.shape), " has a negative dimension");
  bool empty = std::find(e.shape.begin(), e.shape.end(), int64_t(0)) != e.shape.end();
  uint64_t bytes = empty ? 0 : dtype_size(e.dtype);
  for (int64_t d : e.shape) {
    if (bytes > std::numeric_limits<uint64_t>::max() / uint64_t(std::max<int64_t>(d, 1)))
      throw refuse("shape ", shape_str(e.shape), " is too large");
    bytes *= uint64_t(d);
  }
  if (bytes > kSafetensorsMaxTensorBytes)
    throw refuse("shape ", shape_str(e.shape), " of ", safetensors_dtype_name(e.dtype), " is ", bytes,
                 " bytes, over the limit of ", kSafetensorsMaxTensorBytes, " bytes (",
                 kSafetensorsMaxTensorBytes >> 30, " GiB) per tensor");

  auto offsets = value.find("data_offsets");
  if (offsets == value.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
      !(*offsets)[1].is_number_unsigned())
    throw refuse("\"data_offsets\" must be an array of two non-negative integers");
  e.begin = (*offsets)[0].get<uint64_t>();
  e.end = (*offsets)[1].get<uint64_t>();
  if (e.end < e.begin) throw refuse("data_offsets ", offsets_str(e.begin, e.end), " end before they begin");
  if (e.end - e.begin != bytes)
    throw refuse("data_offsets ", offsets_str(e.begin, e.end), " hold ", e.end - e.begin, " bytes, but shape ",
                 shape_str(e.shape), " of ", safetensors_dtype_name(e.dtype), " needs ", bytes);
  return e;
}

// The format requires the tensors to cover the data section exactly: sorted by offset, each begins
// where the previous one ends, and the last ends at the end of the file.
void check_tiling(const SafetensorsHeader& h) {
  std::vector<const SafetensorsEntry*> by_offset;
  for (const SafetensorsEntry& e : h.entries) by_offset.push_back(&e);
  std::stable_sort(by_offset.begin(), by_offset.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;
  const SafetensorsEntry* previous = nullptr;
  for (const SafetensorsEntry* e : by_offset) {
    auto refuse = [&](const auto&... reason) {
      return Error(cat(h.path, ": tensor '", e->name, "': data_offsets ", offsets_str(e->begin, e->end), " ", reason...));
    };
    if (e->begin < covered)
      throw refuse("overlap tensor '", previous->name, "' ", offsets_str(previous->begin, previous->end));
    if (e->begin > covered)
      throw refuse("leave a hole: data bytes [", covered, ", ", e->begin, ") belong to no tensor");
    if (e->end > h.data_bytes)
      throw refuse("run past the end of the data section (", h.data_bytes, " bytes): file truncated or offsets corrupt");
    covered = e->end;
    previous = e;
  }
  if (covered < h.data_bytes)
    throw Error(cat(h.path, ": data bytes [", covered, ", ", h.data_bytes, ") after the last tensor belong to no tensor"));
}

SafetensorsHeader parse_header(const std::string& path, int fd, uint64_t file_size) {
  if (file_size < 8)
    throw Error(cat(path, ": file is ", file_size,
                    " bytes, too short for the 8-byte header length (truncated or not a safetensors file)"));
  unsigned char length_bytes[8];
  read_exact(path, fd, length_bytes, 8, 0, "header length");
  uint64_t header_bytes = 0;
  for (int i = 7; i >= 0; --i) header_bytes = (header_bytes << 8) | length_bytes[i];
  if (header_bytes > kSafetensorsMaxHeaderBytes)
    throw Error(cat(path, ": header length ", header_bytes, " exceeds the ", kSafetensorsMaxHeaderBytes,
                    "-byte limit (corrupt or not a safetensors file)"));
  if (header_bytes > file_size - 8)
    throw Error(cat(path, ": header length ", header_bytes, " runs past the end of the file (", file_size,
                    " bytes): truncated or corrupt"));
  std::string text(size_t(header_bytes), '\0');
  read_exact(path, fd, text.data(), header_bytes, 8, "header");

  // Duplicate keys would silently hide a tensor: note the first one while parsing.
  std::string duplicate;
  std::set<std::string> top_level_keys;
  Json::parser_callback_t note_duplicates = [&](int depth, Json::parse_event_t event, Json& parsed) {
    if (event == Json::parse_event_t::key && depth == 1 && !top_level_keys.insert(parsed.get<std::string>()).second &&
        duplicate.empty())
      duplicate = parsed.get<std::string>();
    return true;
  };
  Json json;
  try {
    json = Json::parse(text, note_duplicates);
  } catch (const Json::parse_error& e) {
    throw Error(cat(path, ": header is not valid JSON (parse error at header offset ", e.byte > 0 ? e.byte - 1 : 0, ")"));
  } catch (const Json::out_of_range&) {  // a number too large for any JSON number type
    throw Error(cat(path, ": header is not valid JSON (a number is out of range)"));
  }
  if (!json.is_object()) throw Error(cat(path, ": header is not a JSON object"));
  if (!duplicate.empty()) throw Error(cat(path, ": '", duplicate, "' appears twice in the header"));

  SafetensorsHeader h;
  h.path = path;
  h.data_start = 8 + header_bytes;
  h.data_bytes = file_size - h.data_start;
  for (const auto& [key, value] : json.items()) {
    if (key == "__metadata__")
      h.metadata = parse_metadata(path, value);
    else
      h.entries.push_back(parse_entry(path, key, value));
  }
  check_tiling(h);
  return h;
}

Tensor read_entry(const SafetensorsHeader& h, int fd, const SafetensorsEntry& e) {
  Tensor t = Tensor::empty(e.shape, e.dtype, kCPU);
  read_exact(h.path, fd, t.raw_data(), e.end - e.begin, h.data_start + e.begin, cat("tensor '", e.name, "'"));
  return t;
}

// Indices of `entries` in data order, so a whole-file read walks the file forwards.
std::vector<size_t> offset_order(const std::vector<SafetensorsEntry>& entries) {
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return entries[a].begin < entries[b].begin; });
  return order;
}

}  // namespace

const char* safetensors_dtype_name(DType dtype) {
  switch (dtype) {
    case DType::f32: return "F32";
    case DType::f64: return "F64";
    case DType::bf16: return "BF16";
    case DType::f16: return "F16";
    case DType::i32: return "I32";
    case DType::i64: return "I64";
    case DType::u8: return "U8";
  }
  return "?";
}

// ---- writing -------------------------------------------------------------------------------------------

void save_safetensors(const std::string& path, const std::vector<NamedTensor>& tensors,
                      const SafetensorsMetadata& metadata,
                      const std::function<void(const std::string& temporary)>& before_commit) {
  auto refuse = [&](const auto&... reason) { return Error(cat("save_safetensors: ", path, ": ", reason...)); };

  std::set<std::string> names;
  for (const NamedTensor& t : tensors) {
    if (t.name.empty()) throw refuse("a tensor has an empty name");
    if (t.name == "__metadata__") throw refuse("'__metadata__' names the metadata and cannot name a tensor");
    if (!names.insert(t.name).second) throw refuse("tensor name '", t.name, "' appears twice");
    if (!t.tensor.defined()) throw refuse("tensor '", t.name, "' is undefined");
  }

  // Data layout: widest elements first keeps every tensor naturally aligned without padding, which the
  // format forbids (the data must be covered exactly).
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return dtype_size(tensors[a].tensor.dtype()) > dtype_size(tensors[b].tensor.dtype());
  });
  std::vector<uint64_t> begin(tensors.size()), end(tensors.size());
  uint64_t offset = 0;
  for (size_t i : order) {
    begin[i] = offset;
    offset += tensors[i].tensor.nbytes();
    end[i] = offset;
  }

  Json header = Json::object();
  if (!metadata.empty()) {
    Json& m = header["__metadata__"] = Json::object();
    for (const auto& [key, value] : metadata) m[key] = value;
  }
  for (size_t i = 0; i < tensors.size(); ++i) {
    const Tensor& t = tensors[i].tensor;
    header[tensors[i].name] = Json{{"dtype", safetensors_dtype_name(t.dtype())},
                                   {"shape", t.shape()},
                                   {"data_offsets", {begin[i], end[i]}}};
  }
  std::string text;
  try {
    text = header.dump();
  } catch (const Json::type_error&) {
    throw refuse("a tensor name or metadata string is not valid UTF-8");
  }
  text.append((8 - (8 + text.size()) % 8) % 8, ' ');  // the data section starts 8-byte aligned
  unsigned char length_bytes[8];
  for (int i = 0; i < 8; ++i) length_bytes[i] = (uint64_t(text.size()) >> (8 * i)) & 0xffu;

  const std::string temporary = cat(path, ".tmp.", ::getpid());
  FileDescriptor file(::open(temporary.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644));
  if (file.get() < 0) throw refuse("cannot create temporary file '", temporary, "': ", errno_text(errno));
  TemporaryFile cleanup(temporary);
  auto write_or_refuse = [&](const void* data, size_t n) {
    if (int err = write_all(file.get(), data, n)) throw refuse("cannot write '", temporary, "': ", errno_text(err));
  };
  write_or_refuse(length_bytes, 8);
  write_or_refuse(text.data(), text.size());
  for (size_t i : order) {
    const Tensor& t = tensors[i].tensor;
    if (t.nbytes() == 0) continue;
    // One tensor at a time on the host, so saving a GPU model never doubles its memory.
    Tensor host = t.device().is_cpu() ? t : t.detach().to(kCPU);
    write_or_refuse(host.raw_data(), host.nbytes());
  }
  if (before_commit) before_commit(temporary);
  if (::fsync(file.get()) != 0) throw refuse("cannot fsync '", temporary, "': ", errno_text(errno));
  if (int err = file.close()) throw refuse("cannot close '", temporary, "': ", errno_text(err));
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    throw refuse("cannot rename '", temporary, "' over it: ", errno_text(errno));
  cleanup.commit();

  // The rename is durable only once the folder's entry is on disk.
  std::string folder = std::filesystem::path(path).parent_path().string();
  if (folder.empty()) folder = ".";
  FileDescriptor dir(::open(folder.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() < 0 || ::fsync(dir.get()) != 0)
    throw refuse("written, but syncing its folder '", folder, "' failed: ", errno_text(errno));
}

// ---- reading -------------------------------------------------------------------------------------------

SafetensorsHeader read_safetensors_header(const std::string& path) {
  uint64_t size = 0;
  FileDescriptor file(open_for_reading(path, size));
  return parse_header(path, file.get(), size);
}

const Tensor* SafetensorsFile::find(const std::string& name) const {
  for (const NamedTensor& t : tensors)
    if (t.name == name) return &t.tensor;
  return nullptr;
}

const Tensor& SafetensorsFile::at(const std::string& name) const {
  const Tensor* t = find(name);
  if (!t) throw Error(cat(path, ": tensor '", name, "': not in the file"));
  return *t;
}

SafetensorsFile read_safetensors(const std::string& path) {
  uint64_t size = 0;
  FileDescriptor file(open_for_reading(path, size));
  SafetensorsHeader h = parse_header(path, file.get(), size);
  SafetensorsFile out;
  out.path = path;
  out.metadata = h.metadata;
  out.tensors.resize(h.entries.size());
  for (size_t i : offset_order(h.entries)) out.tensors[i] = {h.entries[i].name, read_entry(h, file.get(), h.entries[i])};
  return out;
}

// ---- loading into existing tensors ---------------------------------------------------------------------

namespace {

// What load_into needs to know of a file tensor before any data is read.
struct FileTensorInfo {
  DType dtype;
  Shape shape;
};

LoadIntoReport check_targets(const std::string& path, const SafetensorsMetadata& metadata,
                             const std::map<std::string, FileTensorInfo>& in_file,
                             const std::map<std::string, Tensor>& targets, const LoadIntoOptions& options) {
  for (const auto& [key, wanted] : options.require_metadata) {
    auto it = metadata.find(key);
    if (it == metadata.end())
      throw Error(cat(path, ": metadata '", key, "' missing from the file, '", wanted, "' expected"));
    if (it->second != wanted)
      throw Error(cat(path, ": metadata '", key, "' is '", it->second, "' in file, '", wanted, "' expected"));
  }
  LoadIntoReport report;
  std::vector<std::string> problems;
  for (const auto& [name, target] : targets) {
    if (!target.defined()) throw Error(cat("load_into: target tensor '", name, "' is undefined"));
    auto it = in_file.find(name);
    std::string prefix = cat(path, ": tensor '", name, "': ");
    if (it == in_file.end()) {
      if (options.allow_missing)
        report.missing.push_back(name);
      else
        problems.push_back(prefix + "missing from the file");
    } else if (it->second.dtype != target.dtype()) {
      problems.push_back(cat(prefix, "dtype ", safetensors_dtype_name(it->second.dtype), " in file, ",
                             safetensors_dtype_name(target.dtype()), " expected"));
    } else if (it->second.shape != target.shape()) {
      problems.push_back(cat(prefix, "shape ", shape_str(it->second.shape), " in file, ", shape_str(target.shape()),
                             " expected"));
    } else {
      report.loaded.push_back(name);
    }
  }
  for (const auto& [name, info] : in_file) {
    if (targets.count(name)) continue;
    if (options.allow_extra)
      report.extra.push_back(name);
    else
      problems.push_back(cat(path, ": tensor '", name, "': in the file but not expected"));
  }
  if (!problems.empty()) {
    std::string more = problems.size() > 1 ? cat(" (and ", problems.size() - 1, " more mismatching tensors)") : "";
    throw Error(problems.front() + more);
  }
  return report;
}

}  // namespace

LoadIntoReport load_into(const SafetensorsFile& file, const std::map<std::string, Tensor>& targets,
                         const LoadIntoOptions& options) {
  std::map<std::string, FileTensorInfo> in_file;
  for (const NamedTensor& t : file.tensors) in_file[t.name] = {t.tensor.dtype(), t.tensor.shape()};
  LoadIntoReport report = check_targets(file.path, file.metadata, in_file, targets, options);
  for (const std::string& name : report.loaded) targets.at(name).copy_(file.at(name));
  return report;
}

LoadIntoReport load_into(const std::string& path, const std::map<std::string, Tensor>& targets,
                         const LoadIntoOptions& options) {
  uint64_t size = 0;
  FileDescriptor file(open_for_reading(path, size));
  SafetensorsHeader h = parse_header(path, file.get(), size);
  std::map<std::string, FileTensorInfo> in_file;
  for (const SafetensorsEntry& e : h.entries) in_file[e.name] = {e.dtype, e.shape};
  LoadIntoReport report = check_targets(path, h.metadata, in_file, targets, options);

  // Read everything that will be copied before copying anything: a read error leaves the targets intact.
  std::map<std::string, Tensor> loaded;
  for (size_t i : offset_order(h.entries))
    if (std::binary_search(report.loaded.begin(), report.loaded.end(), h.entries[i].name))
      loaded[h.entries[i].name] = read_entry(h, file.get(), h.entries[i]);
  for (const auto& [name, values] : loaded) targets.at(name).copy_(values);
  return report;
}

}  // namespace scpn
