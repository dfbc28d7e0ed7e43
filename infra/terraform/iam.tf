# Least-privilege IAM for the pods, through IRSA (IAM Roles for Service Accounts).

locals {
  service_accounts = {
    gateway = "${var.k8s_release}-gateway"
    ledger  = "${var.k8s_release}-ledger"
  }
}

data "aws_iam_policy_document" "assume" {
  for_each = local.service_accounts

  statement {
    effect  = "Allow"
    actions = ["sts:AssumeRoleWithWebIdentity"]

    principals {
      type        = "Federated"
      identifiers = [var.eks_oidc_provider_arn]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_provider_url}:sub"
      values   = ["system:serviceaccount:${var.k8s_namespace}:${each.value}"]
    }

    condition {
      test     = "StringEquals"
      variable = "${var.eks_oidc_provider_url}:aud"
      values   = ["sts.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "service" {
  for_each = local.service_accounts

  name               = "${local.name}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume[each.key].json
}

# Gateway (outbox relay): send to the main queue only (SendMessageBatch is authorized by
# sqs:SendMessage).
data "aws_iam_policy_document" "gateway" {
  statement {
    sid       = "RelaySend"
    effect    = "Allow"
    actions   = ["sqs:SendMessage", "sqs:GetQueueAttributes", "sqs:GetQueueUrl"]
    resources = [aws_sqs_queue.main.arn]
  }
}

# Ledger worker: consume the main queue; operator tooling (maas dlq ...) on the DLQ:
# inspect, delete (purge = receive + delete, no sqs:PurgeQueue), send back to the main queue
# (redrive) and start a move task (StartMessageMoveTask from the DLQ to its source queue).
data "aws_iam_policy_document" "ledger" {
  statement {
    sid    = "ConsumeMain"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
    ]
    resources = [aws_sqs_queue.main.arn]
  }

  statement {
    sid    = "OperateDlq"
    effect = "Allow"
    actions = [
      "sqs:ReceiveMessage",
      "sqs:DeleteMessage",
      "sqs:ChangeMessageVisibility",
      "sqs:GetQueueAttributes",
      "sqs:GetQueueUrl",
      "sqs:StartMessageMoveTask",
    ]
    resources = [aws_sqs_queue.dlq.arn]
  }

  # Redrive by hand re-sends DLQ messages to the main queue.
  statement {
    sid       = "RedriveToMain"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.main.arn]
  }
}

resource "aws_iam_policy" "gateway" {
  name        = "${local.name}-gateway-sqs"
  description = "MaaS gateway: send token events to the FIFO queue"
  policy      = data.aws_iam_policy_document.gateway.json
}

resource "aws_iam_policy" "ledger" {
  name        = "${local.name}-ledger-sqs"
  description = "MaaS ledger: consume token events, operate the DLQ"
  policy      = data.aws_iam_policy_document.ledger.json
}

resource "aws_iam_role_policy_attachment" "gateway" {
  role       = aws_iam_role.service["gateway"].name
  policy_arn = aws_iam_policy.gateway.arn
}

resource "aws_iam_role_policy_attachment" "ledger" {
  role       = aws_iam_role.service["ledger"].name
  policy_arn = aws_iam_policy.ledger.arn
}
