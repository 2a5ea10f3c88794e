// One line per tensor (name, dtype, shape, CRC-32 of the bytes, sum of the values) in the format that
// tools/golden/check_safetensors.py prints, so our reading and the reference package's can be diffed.
// Used by tools/write_sample_safetensors.cpp and tools/inspect_safetensors.cpp.
#pragma once
#include <algorithm>
#include <cstdio>
#include <numeric>

#include "engine/safetensors.h"

namespace scpn::tools {

// CRC-32 (IEEE, as Python's zlib.crc32), bit by bit: checkpoint summaries need no speed.
inline uint32_t crc32(const unsigned char* p, size_t n) {
  uint32_t c = 0xffffffffu;
  for (size_t i = 0; i < n; ++i) {
    c ^= p[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xedb88320u & (0u - (c & 1u)));
  }
  return ~c;
}

inline void print_summary(const SafetensorsFile& file, const char* how) {
  std::printf("%s: %zu tensors, %s\n", file.path.c_str(), file.tensors.size(), how);
  for (const auto& [key, value] : file.metadata) std::printf("  metadata %s = %s\n", key.c_str(), value.c_str());
  std::vector<const NamedTensor*> by_name;
  for (const NamedTensor& t : file.tensors) by_name.push_back(&t);
  std::sort(by_name.begin(), by_name.end(), [](const NamedTensor* a, const NamedTensor* b) { return a->name < b->name; });
  for (const NamedTensor* t : by_name) {
    std::vector<double> v = t->tensor.to_vector();
    double total = std::accumulate(v.begin(), v.end(), 0.0);
    uint32_t crc = crc32(static_cast<const unsigned char*>(t->tensor.raw_data()), t->tensor.nbytes());
    std::printf("  %-24s %-5s %-12s crc32=%08x sum=%.9g\n", t->name.c_str(), safetensors_dtype_name(t->tensor.dtype()),
                shape_str(t->tensor.shape()).c_str(), crc, total);
  }
}

}  // namespace scpn::tools
