# Defaults of the queue variables EQUAL shared/settings.py (tests/infra checks it).

variable "region" {
  description = "AWS region of this deployment (one state per region)."
  type        = string
}

variable "region_short" {
  description = "Short region name used in resource names, e.g. use1."
  type        = string
}

variable "environment" {
  description = "Environment name: prod or staging."
  type        = string
  default     = "prod"
}

# --- SQS -------------------------------------------------------------------------------

variable "queue_name" {
  description = "Main FIFO queue (settings.queue_name)."
  type        = string
  default     = "maas-token-events.fifo"
}

variable "dlq_name" {
  description = "Dead-letter FIFO queue (settings.dlq_name)."
  type        = string
  default     = "maas-token-events-dlq.fifo"
}

variable "max_receive_count" {
  description = "Receives before a message moves to the DLQ (settings.max_receive_count)."
  type        = number
  default     = 5
}

variable "visibility_timeout_s" {
  description = "Visibility timeout of the main queue in seconds (settings.visibility_timeout_s)."
  type        = number
  default     = 30
}

variable "message_retention_s" {
  description = "Retention of the main queue in seconds (settings.message_retention_s)."
  type        = number
  default     = 345600
}

variable "dlq_retention_s" {
  description = "Retention of the DLQ in seconds (settings.dlq_retention_s)."
  type        = number
  default     = 1209600
}

# --- Kubernetes (IRSA) -----------------------------------------------------------------

variable "eks_oidc_provider_arn" {
  description = "ARN of the EKS cluster's IAM OIDC provider."
  type        = string
}

variable "eks_oidc_provider_url" {
  description = "Issuer URL of the EKS cluster's OIDC provider, without https://."
  type        = string
}

variable "k8s_namespace" {
  description = "Namespace of the Helm release."
  type        = string
  default     = "maas"
}

variable "k8s_release" {
  description = "Helm release name (ServiceAccounts are <release>-gateway and <release>-ledger)."
  type        = string
  default     = "maas"
}

# --- Redis (ElastiCache, cluster mode) -------------------------------------------------

variable "vpc_id" {
  description = "VPC of the EKS cluster."
  type        = string
}

variable "private_subnet_ids" {
  description = "Private subnets (one per AZ) for ElastiCache."
  type        = list(string)
}

variable "eks_node_security_group_id" {
  description = "Security group of the EKS nodes (the only clients of Redis)."
  type        = string
}

variable "redis_node_type" {
  description = "ElastiCache node type."
  type        = string
  default     = "cache.r7g.large"
}

variable "redis_engine_version" {
  description = "Redis engine version."
  type        = string
  default     = "7.1"
}

variable "redis_num_node_groups" {
  description = "Shards of the Redis cluster (hash slots are spread over them)."
  type        = number
  default     = 3
}

variable "redis_replicas_per_node_group" {
  description = "Replicas per shard (>= 1 for Multi-AZ automatic failover)."
  type        = number
  default     = 2
}

variable "redis_auth_token" {
  description = "Redis AUTH token (16-128 printable characters); from a secret store, never committed."
  type        = string
  sensitive   = true
}

variable "cache_redis_node_type" {
  description = "ElastiCache node type of the cache instance (geocoder answers)."
  type        = string
  default     = "cache.t4g.medium"
}

variable "cache_redis_auth_token" {
  description = "AUTH token of the cache instance (16-128 printable characters); from a secret store, never committed."
  type        = string
  sensitive   = true
}

variable "redis_snapshot_retention_days" {
  description = "Days of automatic daily snapshots kept."
  type        = number
  default     = 7
}

variable "redis_snapshot_window" {
  description = "Daily snapshot window (UTC)."
  type        = string
  default     = "03:00-04:00"
}

variable "redis_maintenance_window" {
  description = "Weekly maintenance window (UTC)."
  type        = string
  default     = "sun:05:00-sun:06:00"
}

# --- MongoDB Atlas ---------------------------------------------------------------------

variable "atlas_project_id" {
  description = "MongoDB Atlas project id."
  type        = string
}

variable "atlas_region" {
  description = "Atlas region name, e.g. US_EAST_1."
  type        = string
}

variable "mongo_cluster_name" {
  description = "Empty in the home region, whose state creates the Atlas cluster; in every other region, the name of that cluster (maas-<region_short>-ledger of the home region), which it uses."
  type        = string
  default     = ""
}

variable "mongo_instance_size" {
  description = "Atlas instance size of each shard."
  type        = string
  default     = "M40"
}

variable "mongo_num_shards" {
  description = "Shards of the Atlas cluster."
  type        = number
  default     = 2
}

variable "mongo_version" {
  description = "MongoDB major version."
  type        = string
  default     = "7.0"
}
