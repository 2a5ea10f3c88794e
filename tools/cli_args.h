// Hand-written command-line parsing for the small tools: "--name value" or "--name=value" options, flags
// without a value ("--quiet") and -h/--help. Unknown options, missing values, repeats and malformed numbers are scpn::Error messages naming
// the option, which the tools print as one line before exiting with status 1.
#pragma once
#include <cerrno>
#include <cstdlib>
#include <map>
#include <set>
#include <string>

#include "engine/error.h"

namespace scpn::tools {

class CliArgs {
 public:
  // `options`: the accepted option names with their dashes ("--capacity"); `flags`: those that take no value.
  CliArgs(int argc, char** argv, const std::set<std::string>& options, const std::set<std::string>& flags = {}) {
    for (int i = 1; i < argc; ++i) {
      std::string arg = argv[i];
      if (arg == "-h" || arg == "--help") {
        help_ = true;
        continue;
      }
      if (flags.count(arg)) {
        if (!flags_.insert(arg).second) throw Error(cat(arg, " is given twice"));
        continue;
      }
      std::string name = arg, value;
      bool inline_value = false;
      if (size_t eq = arg.find('='); arg.rfind("--", 0) == 0 && eq != std::string::npos) {
        name = arg.substr(0, eq);
        value = arg.substr(eq + 1);
        inline_value = true;
      }
      if (inline_value && flags.count(name)) throw Error(cat(name, " takes no value"));
      if (!options.count(name))
        throw Error(arg.rfind("-", 0) == 0 ? cat("unknown option '", name, "' (see --help)")
                                           : cat("unexpected argument '", arg, "' (options take the form --name VALUE)"));
      if (!inline_value) {
        if (i + 1 >= argc) throw Error(cat(name, " needs a value"));
        value = argv[++i];
      }
      if (!values_.emplace(name, value).second) throw Error(cat(name, " is given twice"));
    }
  }

  bool help() const { return help_; }
  bool flag(const std::string& name) const { return flags_.count(name) != 0; }
  bool has(const std::string& name) const { return values_.count(name) != 0; }
  std::string get(const std::string& name, const std::string& fallback) const {
    auto it = values_.find(name);
    return it == values_.end() ? fallback : it->second;
  }
  std::string required(const std::string& name) const {
    auto it = values_.find(name);
    if (it == values_.end() || it->second.empty()) throw Error(cat("missing ", name, " (see --help)"));
    return it->second;
  }

 private:
  std::map<std::string, std::string> values_;
  std::set<std::string> flags_;
  bool help_ = false;
};

// The whole text must be the number.
inline double parse_double(const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  double v = std::strtod(text.c_str(), &end);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    throw Error(cat(name, ": '", text, "' is not a number"));
  return v;
}

inline int64_t parse_int(const std::string& name, const std::string& text) {
  errno = 0;
  char* end = nullptr;
  long long v = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || end != text.c_str() + text.size() || errno == ERANGE)
    throw Error(cat(name, ": '", text, "' is not an integer"));
  return int64_t(v);
}

}  // namespace scpn::tools
