// The host allocator (engine/memory.h): 64-byte alignment at every size, and the cache of freed blocks of
// 64 KiB and more, which hands a released block to the next request of its size class.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "engine/memory.h"

using namespace scpn;

namespace {
bool cache_off() {
  const char* env = std::getenv("SCPN_HOST_CACHE");
  return env && std::string(env) == "0";
}
}  // namespace

TEST_CASE("host memory: 64-byte aligned and writable to the end, at every size") {
  for (size_t bytes : {size_t(0), size_t(1), size_t(63), size_t(4096), size_t(65535), size_t(65536), size_t(300000),
                       size_t(1) << 22}) {
    CAPTURE(bytes);
    void* p = allocate_bytes(bytes, kCPU);
    REQUIRE(p != nullptr);
    CHECK(reinterpret_cast<uintptr_t>(p) % 64 == 0);
    std::memset(p, 0xab, bytes);
    release_bytes(p, bytes, kCPU);
  }
}

TEST_CASE("host memory: a released large block serves the next request of its size class, and no other") {
  if (cache_off()) {
    MESSAGE("SCPN_HOST_CACHE=0: the cache is off, nothing to check");
    return;
  }
  // 300,000 and 299,999 bytes share a class (multiples of 32 KiB between 256 and 512 KiB); 600,000 does not.
  void* a = allocate_bytes(300000, kCPU);
  std::memset(a, 0x5a, 300000);
  release_bytes(a, 300000, kCPU);
  void* b = allocate_bytes(299999, kCPU);
  CHECK(b == a);
  CHECK(static_cast<unsigned char*>(b)[299998] == 0x5a);  // handed back as it was: never assume zeros
  void* c = allocate_bytes(300000, kCPU);                  // the cached block is taken: a fresh one
  CHECK(c != b);
  release_bytes(c, 300000, kCPU);
  void* d = allocate_bytes(600000, kCPU);
  CHECK(d != c);
  CHECK(reinterpret_cast<uintptr_t>(d) % 64 == 0);
  release_bytes(b, 299999, kCPU);
  release_bytes(d, 600000, kCPU);
}
