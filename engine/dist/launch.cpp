// Reading the launchers' environment variables (launch.h).
#include "engine/dist/launch.h"

#include <cstdlib>

#include "engine/error.h"

namespace scpn::dist {

namespace {

int parse_int(const EnvLookup& env, const std::string& name, int low, int high) {
  const std::string text = *env(name);
  size_t used = 0;
  long value = 0;
  try {
    value = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  SCPN_CHECK(used == text.size() && !text.empty(), "environment variable ", name, "='", text,
             "' is not an integer");
  SCPN_CHECK(value >= low && value <= high, "environment variable ", name, "=", value, " is out of range [",
             low, ", ", high, "]");
  return int(value);
}

std::optional<int> optional_int(const EnvLookup& env, const std::string& name, int low, int high) {
  if (!env(name)) return std::nullopt;
  return parse_int(env, name, low, high);
}

struct LauncherVariables {
  const char* launcher;
  const char* rank;
  const char* size;
  const char* local_rank;
  const char* local_size;  // nullptr: unknown
};

constexpr LauncherVariables kLaunchers[] = {
    {"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK", "LOCAL_WORLD_SIZE"},
    {"slurm", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID", "SLURM_NTASKS_PER_NODE"},
    {"openmpi", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK",
     "OMPI_COMM_WORLD_LOCAL_SIZE"},
    {"mpich", "PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID", "MPI_LOCALNRANKS"},
};

}  // namespace

EnvLookup process_environment() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (!v) return std::nullopt;
    return std::string(v);
  };
}

std::string first_slurm_host(const std::string& node_list) {
  // The first entry ends at a comma outside brackets; a bracket holds ranges and lists of suffixes.
  const size_t bracket = node_list.find('[');
  const size_t comma = node_list.find(',');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket))
    return node_list.substr(0, comma);
  const size_t close = node_list.find(']', bracket);
  SCPN_CHECK(close != std::string::npos, "SLURM node list '", node_list, "' has an unclosed '['");
  const std::string prefix = node_list.substr(0, bracket);
  const std::string inside = node_list.substr(bracket + 1, close - bracket - 1);
  const std::string first = inside.substr(0, inside.find_first_of(",-"));
  SCPN_CHECK(!first.empty(), "SLURM node list '", node_list, "' has an empty range");
  return prefix + first;
}

LaunchInfo detect_launch(const EnvLookup& env) {
  LaunchInfo info;
  const LauncherVariables* found = nullptr;
  for (const auto& l : kLaunchers)
    if (env(l.rank) && env(l.size)) {
      found = &l;
      break;
    }
  if (found) {
    info.launcher = found->launcher;
    info.world_size = parse_int(env, found->size, 1, 1 << 20);
    info.rank = parse_int(env, found->rank, 0, 1 << 20);
    SCPN_CHECK(info.rank < info.world_size, "environment variable ", found->rank, "=", info.rank,
               " is not below ", found->size, "=", info.world_size);
    info.local_rank = optional_int(env, found->local_rank, 0, 1 << 20).value_or(0);
    // SLURM writes "4" or "4(x2),2" (per node group); the first group's count is this node's when uniform.
    std::optional<std::string> local = env(found->local_size);
    if (local) {
      const std::string digits = local->substr(0, local->find_first_not_of("0123456789"));
      if (!digits.empty() && digits.size() < 8) info.local_world_size = std::stoi(digits);
    }
  }

  // Rank 0's address: explicit variables first, then what the launcher tells.
  const bool explicit_addr = env("MASTER_ADDR").has_value();
  if (explicit_addr) {
    info.master_addr = *env("MASTER_ADDR");
    SCPN_CHECK(!info.master_addr.empty(), "environment variable MASTER_ADDR is empty");
  } else if (info.launcher == "slurm") {
    const auto list = env("SLURM_STEP_NODELIST") ? env("SLURM_STEP_NODELIST") : env("SLURM_JOB_NODELIST");
    SCPN_CHECK(list.has_value(), "a SLURM launch needs SLURM_STEP_NODELIST or SLURM_JOB_NODELIST (or MASTER_ADDR) "
               "to find rank 0's host");
    info.master_addr = first_slurm_host(*list);
  } else if (info.distributed() && (info.launcher == "openmpi" || info.launcher == "mpich")) {
    // mpirun: one node when every rank is local; otherwise rank 0's host cannot be known without MPI.
    SCPN_CHECK(info.local_world_size == info.world_size, "a ", info.launcher, " launch over several nodes needs ",
               "MASTER_ADDR (rank 0's host) and MASTER_PORT, e.g. mpirun -x MASTER_ADDR=<host> -x MASTER_PORT=29500");
  }
  if (env("MASTER_PORT")) info.master_port = parse_int(env, "MASTER_PORT", 1, 65535);
  return info;
}

}  // namespace scpn::dist
