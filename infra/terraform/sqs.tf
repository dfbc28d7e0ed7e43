# SQS FIFO in high-throughput mode: deduplication and throughput are per message group,
# and the relay uses one message group per outbox shard (MessageGroupId = shard).

locals {
  name = "maas-${var.region_short}"
}

resource "aws_sqs_queue" "dlq" {
  name                      = var.dlq_name
  fifo_queue                = true
  message_retention_seconds = var.dlq_retention_s
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue" "main" {
  name                        = var.queue_name
  fifo_queue                  = true
  content_based_deduplication = false # the relay sets MessageDeduplicationId = hash(event ids)
  deduplication_scope         = "messageGroup"
  fifo_throughput_limit       = "perMessageGroupId"
  visibility_timeout_seconds  = var.visibility_timeout_s
  message_retention_seconds   = var.message_retention_s
  receive_wait_time_seconds   = 20
  sqs_managed_sse_enabled     = true

  redrive_policy = jsonencode({
    deadLetterTargetArn = aws_sqs_queue.dlq.arn
    maxReceiveCount     = var.max_receive_count
  })
}

# Only the main queue may use the DLQ as its dead-letter target.
resource "aws_sqs_queue_redrive_allow_policy" "dlq" {
  queue_url = aws_sqs_queue.dlq.id

  redrive_allow_policy = jsonencode({
    redrivePermission = "byQueue"
    sourceQueueArns   = [aws_sqs_queue.main.arn]
  })
}
