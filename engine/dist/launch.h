// Where this process stands in a job started by a cluster launcher: its rank, the world size, its rank on
// its node (which picks the GPU) and the address of rank 0, read from the environment the launcher set.
// No MPI library is needed: torchrun, SLURM's srun, Open MPI's and MPICH's mpirun all export enough.
#pragma once
#include <functional>
#include <optional>
#include <string>

namespace scpn::dist {

struct LaunchInfo {
  int rank = 0, world_size = 1, local_rank = 0;
  int local_world_size = 0;  // processes of the job on this node; 0 when the launcher does not say
  std::string master_addr = "127.0.0.1";
  int master_port = 29500;
  std::string launcher = "none";  // "torchrun", "slurm", "openmpi", "mpich", "none"
  bool distributed() const { return world_size > 1; }
};

// The environment, as a lookup (tests pass their own).
using EnvLookup = std::function<std::optional<std::string>(const std::string& name)>;
EnvLookup process_environment();

// Reads, in this order (the first whose rank and size are both set wins):
//   torchrun-style: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT;
//   SLURM:   SLURM_PROCID, SLURM_NTASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE; rank 0's host is the
//            first of SLURM_STEP_NODELIST (or SLURM_JOB_NODELIST);
//   Open MPI: OMPI_COMM_WORLD_RANK, OMPI_COMM_WORLD_SIZE, OMPI_COMM_WORLD_LOCAL_RANK, OMPI_COMM_WORLD_LOCAL_SIZE;
//   MPICH:   PMI_RANK, PMI_SIZE, MPI_LOCALRANKID, MPI_LOCALNRANKS.
// MASTER_ADDR and MASTER_PORT, when set, override the derived address under every launcher; without
// them an mpirun job whose ranks are all on one node uses 127.0.0.1, and a multi-node one is an error
// asking for MASTER_ADDR. Nothing set: one process, not distributed. Malformed or inconsistent values
// (rank ≥ size, a non-number) are errors naming the variable.
LaunchInfo detect_launch(const EnvLookup& env);

// The first host of a SLURM node list: "gpu[07-09,12],cpu1" → "gpu07", "node3,node4" → "node3".
std::string first_slurm_host(const std::string& node_list);

}  // namespace scpn::dist
