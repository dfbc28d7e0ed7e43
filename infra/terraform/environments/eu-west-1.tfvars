# terraform workspace select eu-west-1
# terraform apply -var-file=environments/eu-west-1.tfvars -var="redis_auth_token=$REDIS_AUTH_TOKEN" \
#   -var="cache_redis_auth_token=$CACHE_REDIS_AUTH_TOKEN"
# Europe charges its own slice of every account it serves, in its own Redis, with its own
# gateways, queue and ledgers; the accounts' pools and every region's books are in the
# home region's Atlas cluster (us-east-1), named here.
region       = "eu-west-1"
region_short = "euw1"
environment  = "prod"

eks_oidc_provider_arn      = "arn:aws:iam::123456789012:oidc-provider/oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0F1E2D3C4B5A69788EXAMPLE"
eks_oidc_provider_url      = "oidc.eks.eu-west-1.amazonaws.com/id/EXAMPLE0F1E2D3C4B5A69788EXAMPLE"
vpc_id                     = "vpc-0b1c2d3e4f5a60001"
private_subnet_ids         = ["subnet-0b1c2d3e4f5a60011", "subnet-0b1c2d3e4f5a60012", "subnet-0b1c2d3e4f5a60013"]
eks_node_security_group_id = "sg-0b1c2d3e4f5a60021"

redis_node_type               = "cache.r7g.large"
redis_num_node_groups         = 2
redis_replicas_per_node_group = 1

atlas_project_id   = "0123456789abcdef01234567"
atlas_region       = "US_EAST_1"
mongo_cluster_name = "maas-use1-ledger"
