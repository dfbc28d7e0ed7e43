#!/usr/bin/env bash
# LocalStack ready hook (docker-compose): the FIFO queue and its dead-letter queue.
# Names and numbers equal shared/settings.py; tests/integration/test_compose.py checks it.
set -euo pipefail
awslocal sqs create-queue --queue-name maas-token-events-dlq.fifo \
  --attributes FifoQueue=true,ContentBasedDeduplication=false,MessageRetentionPeriod=1209600
dlq_arn=$(awslocal sqs get-queue-attributes \
  --queue-url "$(awslocal sqs get-queue-url --queue-name maas-token-events-dlq.fifo --query QueueUrl --output text)" \
  --attribute-names QueueArn --query Attributes.QueueArn --output text)
awslocal sqs create-queue --queue-name maas-token-events.fifo --attributes "$(cat <<JSON
{"FifoQueue": "true", "ContentBasedDeduplication": "false", "VisibilityTimeout": "30",
 "MessageRetentionPeriod": "345600", "DeduplicationScope": "messageGroup",
 "FifoThroughputLimit": "perMessageGroupId",
 "RedrivePolicy": "{\"deadLetterTargetArn\":\"$dlq_arn\",\"maxReceiveCount\":\"5\"}"}
JSON
)"
