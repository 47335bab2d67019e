#!/bin/bash
# Multi-node DDP without SLURM: run this on every node (same MASTER_ADDR / MASTER_PORT, NODE_RANK 0..NNODES-1).
#   NNODES=2 NODE_RANK=0 MASTER_ADDR=10.0.0.1 bash configs/cluster/torchrun.sh configs/hyperstyle.yaml
# Lightning detects torchrun's environment (TorchElasticEnvironment); devices and num_nodes must match it.
set -euo pipefail
TASK_CONFIG=${1:?give the task config, e.g. configs/hyperstyle.yaml}
GPUS=${GPUS:-$(nvidia-smi -L | wc -l)}
torchrun --nnodes "${NNODES:-1}" --node_rank "${NODE_RANK:-0}" --nproc_per_node "$GPUS" \
  --master_addr "${MASTER_ADDR:-127.0.0.1}" --master_port "${MASTER_PORT:-29500}" \
  -m stylegan_lightning fit --config "$TASK_CONFIG" --config configs/cluster/multi-gpu.yaml \
  --trainer.devices "$GPUS" --trainer.num_nodes "${NNODES:-1}"
