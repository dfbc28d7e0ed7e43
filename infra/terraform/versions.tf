# One state per region: `terraform workspace select us-east-1` (or a separate backend key)
# with `-var-file=environments/us-east-1.tfvars`.
terraform {
  required_version = ">= 1.6.0, < 2.0.0"

  required_providers {
    aws = {
      source  = "hashicorp/aws"
      version = "5.94.1"
    }
    mongodbatlas = {
      source  = "mongodb/mongodbatlas"
      version = "1.34.0"
    }
    random = {
      source  = "hashicorp/random"
      version = "3.7.2"
    }
  }

  # Partial configuration: terraform init -backend-config="bucket=..." -backend-config="key=maas/<region>.tfstate"
  # -backend-config="region=..." -backend-config="dynamodb_table=..."
  backend "s3" {}
}

provider "aws" {
  region = var.region

  default_tags {
    tags = {
      Project     = "maas"
      Environment = var.environment
      Region      = var.region
      ManagedBy   = "terraform"
    }
  }
}

# Credentials from MONGODB_ATLAS_PUBLIC_KEY / MONGODB_ATLAS_PRIVATE_KEY.
provider "mongodbatlas" {}
