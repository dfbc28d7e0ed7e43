# Consumed by infra/helm/maas/values-prod.yaml (see the comments there).

output "queue_url" {
  description = "Main FIFO queue URL (config MAAS_QUEUE_NAME is its name)."
  value       = aws_sqs_queue.main.url
}

output "dlq_url" {
  description = "Dead-letter FIFO queue URL."
  value       = aws_sqs_queue.dlq.url
}

output "queue_arn" {
  description = "Main FIFO queue ARN."
  value       = aws_sqs_queue.main.arn
}

output "redis_configuration_endpoint" {
  description = "Cluster-mode configuration endpoint: secret redis-url = rediss://:<auth token>@<this>:6379/0, MAAS_REDIS_CLUSTER=true."
  value       = aws_elasticache_replication_group.redis.configuration_endpoint_address
}

output "cache_redis_primary_endpoint" {
  description = "Cache instance: meme secret cache-redis-url = rediss://:<auth token>@<this>:6379/0."
  value       = aws_elasticache_replication_group.cache.primary_endpoint_address
}

output "gateway_role_arn" {
  description = "IRSA role for serviceAccounts.gateway.roleArn."
  value       = aws_iam_role.service["gateway"].arn
}

output "ledger_role_arn" {
  description = "IRSA role for serviceAccounts.ledger.roleArn."
  value       = aws_iam_role.service["ledger"].arn
}

output "mongo_srv_host" {
  description = "Atlas SRV connection string (secret mongo-url adds the user and password)."
  value       = local.mongo_srv_host
}

output "aws_region" {
  description = "config MAAS_AWS_REGION, and MAAS_REGION: each region charges its own slices."
  value       = var.region
}
