# terraform workspace select us-east-1
# terraform apply -var-file=environments/us-east-1.tfvars -var="redis_auth_token=$REDIS_AUTH_TOKEN" \
#   -var="cache_redis_auth_token=$CACHE_REDIS_AUTH_TOKEN"
region       = "us-east-1"
region_short = "use1"
environment  = "prod"

eks_oidc_provider_arn      = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
eks_oidc_provider_url      = "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE"
vpc_id                     = "vpc-0a1b2c3d4e5f60001"
private_subnet_ids         = ["subnet-0a1b2c3d4e5f60011", "subnet-0a1b2c3d4e5f60012", "subnet-0a1b2c3d4e5f60013"]
eks_node_security_group_id = "sg-0a1b2c3d4e5f60021"

redis_node_type               = "cache.r7g.large"
redis_num_node_groups         = 3
redis_replicas_per_node_group = 2

atlas_project_id    = "0123456789abcdef01234567"
atlas_region        = "US_EAST_1"
mongo_instance_size = "M40"
mongo_num_shards    = 2
