# MongoDB Atlas: the source of truth for accounts and the ledger journal.
# A sharded cluster; the collections are sharded on _id AFTER the cluster exists, because the
# provider cannot run shardCollection. Run once per cluster (mongosh as an Atlas admin):
#   sh.enableSharding("maas")
#   sh.shardCollection("maas.accounts", { _id: "hashed" })
#   sh.shardCollection("maas.ledger",   { _id: "hashed" })
# A hashed _id spreads accounts and journal documents evenly; every ledger update filters
# on the account _id, so it targets one shard (no scatter-gather, no distributed transaction).

# Several regions share one cluster (docs/multi-region.md): it holds every account's pool
# and every region's books. The home region's state creates it (mongo_cluster_name
# empty); each other region names it and only reads its connection string.
resource "mongodbatlas_advanced_cluster" "maas" {
  count = var.mongo_cluster_name == "" ? 1 : 0

  project_id                     = var.atlas_project_id
  name                           = "${local.name}-ledger"
  cluster_type                   = "SHARDED"
  mongo_db_major_version         = var.mongo_version
  backup_enabled                 = true
  pit_enabled                    = true
  termination_protection_enabled = true

  # One replication spec per shard (independent shard scaling), each a 3-node replica set.
  dynamic "replication_specs" {
    for_each = range(var.mongo_num_shards)
    content {
      zone_name = "Zone 1"

      region_configs {
        provider_name = "AWS"
        region_name   = var.atlas_region
        priority      = 7

        electable_specs {
          instance_size = var.mongo_instance_size
          node_count    = 3
        }

        auto_scaling {
          disk_gb_enabled            = true
          compute_enabled            = true
          compute_scale_down_enabled = false
          compute_max_instance_size  = "M80"
        }
      }
    }
  }

  advanced_configuration {
    javascript_enabled           = false
    minimum_enabled_tls_protocol = "TLS1_2"
  }
}

data "mongodbatlas_advanced_cluster" "home" {
  count = var.mongo_cluster_name == "" ? 0 : 1

  project_id = var.atlas_project_id
  name       = var.mongo_cluster_name
}

locals {
  mongo_srv_host = (var.mongo_cluster_name == ""
    ? mongodbatlas_advanced_cluster.maas[0].connection_strings[0].standard_srv
  : data.mongodbatlas_advanced_cluster.home[0].connection_strings[0].standard_srv)
}
