# ElastiCache for Redis in cluster mode. Accounts are spread over hash slots by their shard
# hash tag {sN}, so every Lua script touches one slot and works unchanged on a cluster.
#
# Durability: ElastiCache has no AOF in cluster mode (appendonly is not available there).
# Instead every shard has replicas in other AZs with Multi-AZ and automatic failover, and
# daily snapshots. Losing an acknowledged write is possible only if a primary fails before
# replicating it; the ledger (MongoDB) stays the source of truth, and the gateway re-hydrates
# an account from MongoDB with a new epoch when its balance key is missing.

data "aws_caller_identity" "current" {}

resource "aws_kms_key" "redis" {
  description             = "${local.name} ElastiCache encryption at rest"
  enable_key_rotation     = true
  deletion_window_in_days = 30

  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "AccountAdministration"
        Effect    = "Allow"
        Principal = { AWS = "arn:aws:iam::${data.aws_caller_identity.current.account_id}:root" }
        Action    = "kms:*"
        Resource  = "*"
      },
      {
        Sid       = "ElastiCacheUse"
        Effect    = "Allow"
        Principal = { AWS = "*" }
        Action    = ["kms:Encrypt", "kms:Decrypt", "kms:ReEncrypt*", "kms:GenerateDataKey*", "kms:DescribeKey", "kms:CreateGrant"]
        Resource  = "*"
        Condition = {
          StringEquals = {
            "kms:ViaService"    = "elasticache.${var.region}.amazonaws.com"
            "kms:CallerAccount" = data.aws_caller_identity.current.account_id
          }
        }
      },
    ]
  })
}

resource "aws_kms_alias" "redis" {
  name          = "alias/${local.name}-redis"
  target_key_id = aws_kms_key.redis.key_id
}

resource "aws_elasticache_subnet_group" "redis" {
  name       = "${local.name}-redis"
  subnet_ids = var.private_subnet_ids
}

resource "aws_security_group" "redis" {
  name        = "${local.name}-redis"
  description = "MaaS Redis: reachable from the EKS nodes only"
  vpc_id      = var.vpc_id
}

resource "aws_vpc_security_group_ingress_rule" "redis_from_nodes" {
  security_group_id            = aws_security_group.redis.id
  description                  = "Redis TLS from the EKS nodes"
  referenced_security_group_id = var.eks_node_security_group_id
  ip_protocol                  = "tcp"
  from_port                    = 6379
  to_port                      = 6379
}

resource "aws_elasticache_parameter_group" "redis" {
  name        = "${local.name}-redis7-cluster"
  family      = "redis7"
  description = "MaaS: cluster mode, never evict (balances must not disappear)"

  parameter {
    name  = "cluster-enabled"
    value = "yes"
  }

  parameter {
    name  = "maxmemory-policy"
    value = "noeviction"
  }
}

resource "aws_elasticache_replication_group" "redis" {
  replication_group_id = "${local.name}-redis"
  description          = "MaaS balances, rate limits and outbox streams (cluster mode)"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.redis.name
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.redis.id]

  # Cluster mode: hash slots spread over node groups, each with replicas in other AZs.
  num_node_groups         = var.redis_num_node_groups
  replicas_per_node_group = var.redis_replicas_per_node_group

  # No AOF in cluster mode: durability comes from Multi-AZ replicas + automatic failover.
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.redis.arn
  transit_encryption_enabled = true
  auth_token                 = var.redis_auth_token
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = var.redis_snapshot_retention_days
  snapshot_window            = var.redis_snapshot_window
  maintenance_window         = var.redis_maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = false
}

# The cache instance (remote geocoder answers): its own memory bound and LRU eviction, so a
# full cache evicts old answers and can never refuse a charge (eviction policy and memory are
# per instance; a separate database would share both). Losing it costs only cache misses.
resource "aws_elasticache_parameter_group" "cache" {
  name        = "${local.name}-cache7"
  family      = "redis7"
  description = "MaaS cache: evict the least recently used keys when full"

  parameter {
    name  = "maxmemory-policy"
    value = "allkeys-lru"
  }
}

resource "aws_elasticache_replication_group" "cache" {
  replication_group_id = "${local.name}-cache"
  description          = "MaaS caches (remote geocoder answers), never balances"
  engine               = "redis"
  engine_version       = var.redis_engine_version
  node_type            = var.cache_redis_node_type
  port                 = 6379
  parameter_group_name = aws_elasticache_parameter_group.cache.name
  subnet_group_name    = aws_elasticache_subnet_group.redis.name
  security_group_ids   = [aws_security_group.redis.id]

  num_cache_clusters         = 2
  automatic_failover_enabled = true
  multi_az_enabled           = true

  at_rest_encryption_enabled = true
  kms_key_id                 = aws_kms_key.redis.arn
  transit_encryption_enabled = true
  auth_token                 = var.cache_redis_auth_token
  auth_token_update_strategy = "ROTATE"

  snapshot_retention_limit   = 1
  maintenance_window         = var.redis_maintenance_window
  auto_minor_version_upgrade = true
  apply_immediately          = false
}
