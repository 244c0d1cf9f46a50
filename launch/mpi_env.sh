# Sourced by the launch scripts: Open MPI settings that work as root, in containers and when
# ranks outnumber cores. NCCL's NVLink multicast stays off (shared machines).
export OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1
export OMPI_MCA_btl_vader_single_copy_mechanism=none
export OMPI_MCA_rmaps_base_oversubscribe=1
export NCCL_NVLS_ENABLE=0
LONGNET_MPIRUN=(mpirun --oversubscribe --bind-to none)
