// What every libFuzzer harness shares: the input written to a scratch file (our readers take paths), an
// input split into several files, and the rule each harness enforces on a refusal: an scpn::Error whose
// one-line message names the file and says why. Anything else (crash, sanitizer report, other exception
// type, a refusal that does not name its file) stops the fuzzer as a finding.
#pragma once
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "engine/error.h"

namespace scpn::fuzz {

namespace fs = std::filesystem;

// A folder of this process under the system temp folder, removed when the fuzzer exits normally.
class ScratchDir {
 public:
  ScratchDir() {
    path_ = fs::temp_directory_path() / cat("scpn_fuzz_", ::getpid());
    fs::create_directories(path_);
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  // Writes `bytes` to the file `name` in the folder (replacing it) and returns its path.
  std::string write(const std::string& name, std::string_view bytes) const {
    fs::path p = path_ / name;
    fs::create_directories(p.parent_path());
    std::ofstream out(p, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), std::streamsize(bytes.size()));
    if (!out) die(cat("cannot write the scratch file ", p.string()));
    return p.string();
  }
  std::string path() const { return path_.string(); }

  [[noreturn]] static void die(const std::string& why) {
    std::fprintf(stderr, "fuzz harness: %s\n", why.c_str());
    std::abort();
  }

 private:
  fs::path path_;
};

inline const ScratchDir& scratch() {
  static const ScratchDir dir;
  return dir;
}

// Cuts an input into parts: each part but the last is preceded by a 2-byte little-endian length (cut
// short at the end of the input), the last part is the rest. Lets one input describe several files.
class InputParts {
 public:
  InputParts(const uint8_t* data, size_t size) : rest_(reinterpret_cast<const char*>(data), size) {}
  std::string_view next() {
    if (rest_.size() < 2) return take(rest_.size());
    size_t n = size_t(uint8_t(rest_[0])) | size_t(uint8_t(rest_[1])) << 8;
    rest_.remove_prefix(2);
    return take(n);
  }
  std::string_view rest() { return take(rest_.size()); }

 private:
  std::string_view rest_;
  std::string_view take(size_t n) {
    n = std::min(n, rest_.size());
    std::string_view part = rest_.substr(0, n);
    rest_.remove_prefix(n);
    return part;
  }
};

// How many inputs the harness accepted and refused (each input counted once), printed when the fuzzer
// exits normally; the reliability report (tools/reliability/check_fuzz.sh) reads the line.
struct Tally {
  unsigned long long accepted = 0, rejected = 0;
  ~Tally() { std::fprintf(stderr, "scpn-fuzz-tally: accepted %llu rejected %llu\n", accepted, rejected); }
};
inline Tally& tally() {
  static Tally t;
  return t;
}

// A refusal must name the file (one of `paths`), say more than the name, and fit on one line, since the
// tools print it as their one error line.
inline void require_clear_refusal(const Error& e, std::initializer_list<std::string> paths) {
  const std::string message = e.what();
  if (message.find('\n') != std::string::npos) ScratchDir::die(cat("refusal spans several lines: ", message));
  for (const std::string& p : paths)
    if (message.find(p) != std::string::npos && message.size() > p.size() + 2) return;
  ScratchDir::die(cat("refusal does not name its file: ", message));
}

}  // namespace scpn::fuzz
