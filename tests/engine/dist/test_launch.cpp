// Reading the launchers' environments: torchrun, SLURM, Open MPI and MPICH variables, rank 0's address
// from each, SLURM node lists, and every malformed value refused with the variable's name.
#include <doctest/doctest.h>

#include <map>

#include "engine/dist/launch.h"
#include "engine/error.h"

using namespace scpn;
using namespace scpn::dist;

namespace {

EnvLookup env_of(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

std::string error_of(std::map<std::string, std::string> vars) {
  try {
    detect_launch(env_of(std::move(vars)));
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST_CASE("no launcher: one process") {
  LaunchInfo i = detect_launch(env_of({}));
  CHECK(i.world_size == 1);
  CHECK(i.rank == 0);
  CHECK(!i.distributed());
  CHECK(i.launcher == "none");
}

TEST_CASE("torchrun") {
  LaunchInfo i = detect_launch(env_of({{"RANK", "5"}, {"WORLD_SIZE", "8"}, {"LOCAL_RANK", "1"},
                                       {"MASTER_ADDR", "node7"}, {"MASTER_PORT", "1234"}}));
  CHECK(i.launcher == "torchrun");
  CHECK(i.rank == 5);
  CHECK(i.world_size == 8);
  CHECK(i.local_rank == 1);
  CHECK(i.master_addr == "node7");
  CHECK(i.master_port == 1234);
  CHECK(i.local_world_size == 0);  // not said
  CHECK(detect_launch(env_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"LOCAL_WORLD_SIZE", "2"}})).local_world_size == 2);
}

TEST_CASE("SLURM: rank 0 is on the first host of the step's node list") {
  LaunchInfo i = detect_launch(env_of({{"SLURM_PROCID", "3"}, {"SLURM_NTASKS", "16"}, {"SLURM_LOCALID", "3"},
                                       {"SLURM_STEP_NODELIST", "gpu[07-09,12]"}, {"SLURM_JOB_NODELIST", "x"}}));
  CHECK(i.launcher == "slurm");
  CHECK(i.rank == 3);
  CHECK(i.world_size == 16);
  CHECK(i.local_rank == 3);
  CHECK(i.master_addr == "gpu07");
  CHECK(i.local_world_size == 0);
  CHECK(detect_launch(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "8"}, {"SLURM_NTASKS_PER_NODE", "4(x2)"},
                              {"SLURM_JOB_NODELIST", "n[1-2]"}}))
            .local_world_size == 4);
  CHECK(i.master_port == 29500);
  // MASTER_ADDR / MASTER_PORT win over what the launcher implies.
  i = detect_launch(env_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}, {"SLURM_JOB_NODELIST", "a,b"},
                            {"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "4000"}}));
  CHECK(i.master_addr == "10.0.0.1");
  CHECK(i.master_port == 4000);
  CHECK(error_of({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2"}}) ==
        "a SLURM launch needs SLURM_STEP_NODELIST or SLURM_JOB_NODELIST (or MASTER_ADDR) to find rank 0's host");
}

TEST_CASE("SLURM node lists") {
  CHECK(first_slurm_host("node3") == "node3");
  CHECK(first_slurm_host("node3,node4") == "node3");
  CHECK(first_slurm_host("gpu[07-09,12],cpu1") == "gpu07");
  CHECK(first_slurm_host("cpu1,gpu[07-09]") == "cpu1");
  CHECK(first_slurm_host("rack2-n[3,5]") == "rack2-n3");
  CHECK_THROWS_WITH(first_slurm_host("gpu[07-09"), "SLURM node list 'gpu[07-09' has an unclosed '['");
}

TEST_CASE("Open MPI and MPICH: one node uses the loopback address, several nodes need MASTER_ADDR") {
  LaunchInfo i = detect_launch(env_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "4"},
                                       {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}));
  CHECK(i.launcher == "openmpi");
  CHECK(i.rank == 1);
  CHECK(i.local_rank == 1);
  CHECK(i.master_addr == "127.0.0.1");
  i = detect_launch(env_of({{"PMI_RANK", "2"}, {"PMI_SIZE", "3"}, {"MPI_LOCALRANKID", "0"},
                            {"MPI_LOCALNRANKS", "1"}, {"MASTER_ADDR", "head"}}));
  CHECK(i.launcher == "mpich");
  CHECK(i.rank == 2);
  CHECK(i.master_addr == "head");
  CHECK(error_of({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "8"}, {"OMPI_COMM_WORLD_LOCAL_SIZE", "4"}}) ==
        "a openmpi launch over several nodes needs MASTER_ADDR (rank 0's host) and MASTER_PORT, e.g. mpirun -x "
        "MASTER_ADDR=<host> -x MASTER_PORT=29500");
}

TEST_CASE("malformed values name the variable") {
  CHECK(error_of({{"RANK", "two"}, {"WORLD_SIZE", "4"}}) == "environment variable RANK='two' is not an integer");
  CHECK(error_of({{"RANK", "4"}, {"WORLD_SIZE", "4"}}) == "environment variable RANK=4 is not below WORLD_SIZE=4");
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "0"}}) ==
        "environment variable WORLD_SIZE=0 is out of range [1, 1048576]");
  CHECK(error_of({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}) ==
        "environment variable MASTER_PORT=70000 is out of range [1, 65535]");
}
