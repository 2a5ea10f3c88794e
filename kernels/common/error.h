// The one exception type of the engine. Messages name the thing at fault (op, shapes, file, key, rank).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>

namespace scpn {

struct Error : std::runtime_error {
  using std::runtime_error::runtime_error;
};

// Concatenates any streamable arguments into one message.
template <class... Args>
std::string cat(const Args&... args) {
  std::ostringstream os;
  (os << ... << args);
  return os.str();
}

}  // namespace scpn

// SCPN_CHECK(cond, parts...): throw scpn::Error(parts...) when cond is false.
#define SCPN_CHECK(cond, ...)                                   \
  do {                                                          \
    if (!(cond)) throw ::scpn::Error(::scpn::cat(__VA_ARGS__)); \
  } while (0)
