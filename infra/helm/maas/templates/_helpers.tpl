{{/* Names and labels. */}}
{{- define "maas.fullname" -}}
{{- if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "maas.name" -}}
{{- printf "%s-%s" (include "maas.fullname" .root) .component | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "maas.selectorLabels" -}}
app.kubernetes.io/name: {{ .root.Chart.Name }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "maas.labels" -}}
{{ include "maas.selectorLabels" . }}
app.kubernetes.io/part-of: maas
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/version: {{ .root.Values.image.tag | default .root.Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version }}
{{- end -}}

{{- define "maas.image" -}}
{{- $img := .Values.image -}}
{{- if $img.digest -}}
{{- printf "%s@%s" $img.repository $img.digest -}}
{{- else -}}
{{- printf "%s:%s" $img.repository (required "image.tag (the commit SHA) is required" $img.tag) -}}
{{- end -}}
{{- end -}}

{{/*
Production fails closed: the gateway and the ledger (its operators' console) verify JWTs, so
each needs a JWT source, a JWKS URL or a required secret; JWKS tokens are checked for their
issuer and audience, and only a role table grants roles.
(The services themselves also refuse the dev secret and short secrets at start-up.)
*/}}
{{- define "maas.requireJwtSource" -}}
{{- if eq (toString .Values.config.MAAS_ENV) "prod" -}}
{{- $jwks := .Values.config.MAAS_JWT_JWKS_URL | default "" -}}
{{- range $component := list "gateway" "ledger" -}}
{{- $secret := false -}}
{{- range (index $.Values.secretEnv $component) -}}
{{- if and (eq .name "MAAS_JWT_SECRET") (not .optional) }}{{ $secret = true }}{{ end -}}
{{- end -}}
{{- if not (or $jwks $secret) -}}
{{- fail (printf "MAAS_ENV=prod needs a JWT source: config.MAAS_JWT_JWKS_URL, or a secretEnv.%s entry for MAAS_JWT_SECRET that is not optional" $component) -}}
{{- end -}}
{{- end -}}
{{- if $jwks -}}
{{- range $name := list "MAAS_JWT_ISSUER" "MAAS_JWT_AUDIENCE" -}}
{{- if not (index $.Values.config $name) -}}
{{- fail (printf "MAAS_ENV=prod with config.MAAS_JWT_JWKS_URL needs config.%s: without it tokens the provider issued to other applications or tenants are accepted" $name) -}}
{{- end -}}
{{- end -}}
{{- end -}}
{{- $roleMap := .Values.config.MAAS_JWT_ROLE_MAP | default "" | toString | fromJson -}}
{{- if or (not $roleMap) (hasKey $roleMap "Error") -}}
{{- fail "MAAS_ENV=prod needs config.MAAS_JWT_ROLE_MAP: the table of the provider's names that grant MaaS roles" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "maas.ledgerReplicas" -}}
{{- $shards := int .Values.ledger.shards -}}
{{- $per := int .Values.ledger.shardsPerReplica -}}
{{- if lt $per 1 }}{{ fail "ledger.shardsPerReplica must be >= 1" }}{{ end -}}
{{- div (add $shards $per -1) $per -}}
{{- end -}}

{{/*
A Deployment for one service. Parameters: root (.), component, module (python -m ...),
port, svc (the values block of the service), secretEnv (list), rollout (true for HTTP
services that take traffic: maxUnavailable 0 / maxSurge 25%).
*/}}
{{/*
The settings that reach the balances' Redis and MongoDB, as a JSON list: in the
...-stores ConfigMap, which only the gateway and the ledger mount.
*/}}
{{- define "maas.storeKeys" -}}
{{- list "MAAS_REDIS_URL" "MAAS_REDIS_CLUSTER" "MAAS_REDIS_MAX_CONNECTIONS" "MAAS_MONGO_URL" "MAAS_MONGO_DB" | toJson -}}
{{- end -}}

{{- define "maas.deployment" -}}
{{- $root := .root -}}
{{- $svc := .svc -}}
apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ include "maas.name" . }}
  namespace: {{ $root.Release.Namespace }}
  labels:
    {{- include "maas.labels" . | nindent 4 }}
  annotations:
    checkov.io/skip1: CKV_K8S_43=Images are pinned to an immutable commit-SHA tag written by the release workflow; image.digest pins by digest when set
    checkov.io/skip3: CKV_K8S_15=Tags are immutable commit SHAs, so IfNotPresent pulls each image once and pods still start while the registry is unreachable
    checkov.io/skip2: CKV_K8S_35=The services read settings from environment variables only (pydantic-settings); secrets come from secretKeyRef, never from the ConfigMap
spec:
  {{- if not .autoscaled }}
  replicas: {{ .replicas }}
  {{- end }}
  revisionHistoryLimit: 5
  minReadySeconds: {{ $svc.minReadySeconds }}
  progressDeadlineSeconds: 600
  strategy:
    type: RollingUpdate
    rollingUpdate:
      # Never drop below the serving capacity during a deploy; new pods must pass
      # readiness (and any readiness gates) for minReadySeconds before old ones go.
      maxUnavailable: 0
      maxSurge: 25%
  selector:
    matchLabels:
      {{- include "maas.selectorLabels" . | nindent 6 }}
  template:
    metadata:
      labels:
        {{- include "maas.labels" . | nindent 8 }}
      annotations:
        # Roll the pods when the configuration changes.
        checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    spec:
      serviceAccountName: {{ include "maas.name" . }}
      automountServiceAccountToken: false
      enableServiceLinks: false
      terminationGracePeriodSeconds: {{ $svc.terminationGracePeriodSeconds }}
      securityContext:
        {{- toYaml $root.Values.podSecurityContext | nindent 8 }}
      {{- with $root.Values.imagePullSecrets }}
      imagePullSecrets:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $svc.readinessGates }}
      readinessGates:
        {{- range . }}
        - conditionType: {{ . | quote }}
        {{- end }}
      {{- end }}
      topologySpreadConstraints:
        - maxSkew: {{ $root.Values.topologySpread.zoneMaxSkew }}
          topologyKey: topology.kubernetes.io/zone
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "maas.selectorLabels" . | nindent 14 }}
        - maxSkew: {{ $root.Values.topologySpread.nodeMaxSkew }}
          topologyKey: kubernetes.io/hostname
          whenUnsatisfiable: ScheduleAnyway
          labelSelector:
            matchLabels:
              {{- include "maas.selectorLabels" . | nindent 14 }}
      {{- with $root.Values.nodeSelector }}
      nodeSelector:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      {{- with $root.Values.tolerations }}
      tolerations:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      containers:
        - name: {{ .component }}
          image: {{ include "maas.image" $root }}
          imagePullPolicy: {{ $root.Values.image.pullPolicy }}
          command: ["python", "-m", {{ .module | quote }}]
          ports:
            - name: http
              containerPort: {{ .port }}
              protocol: TCP
          envFrom:
            - configMapRef:
                name: {{ include "maas.fullname" $root }}-config
            {{- if .stores }}
            - configMapRef:
                name: {{ include "maas.fullname" $root }}-stores
            {{- end }}
          {{- if .secretEnv }}
          env:
            {{- range .secretEnv }}
            - name: {{ .name }}
              valueFrom:
                secretKeyRef:
                  name: {{ $root.Values.existingSecret }}
                  key: {{ .key }}
                  optional: {{ .optional | default false }}
            {{- end }}
          {{- end }}
          readinessProbe:
            httpGet:
              path: /readyz
              port: http
            periodSeconds: 5
            timeoutSeconds: 2
            failureThreshold: 2
            successThreshold: 1
          livenessProbe:
            httpGet:
              path: /healthz
              port: http
            initialDelaySeconds: 10
            periodSeconds: 10
            timeoutSeconds: 2
            failureThreshold: 3
          startupProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 2
            failureThreshold: 30
          lifecycle:
            preStop:
              # Keep serving while endpoints and load balancers forget this pod.
              sleep:
                seconds: {{ $root.Values.preStopSleepSeconds }}
          resources:
            {{- toYaml $svc.resources | nindent 12 }}
          securityContext:
            {{- toYaml $root.Values.containerSecurityContext | nindent 12 }}
          volumeMounts:
            - name: tmp
              mountPath: /tmp
      volumes:
        - name: tmp
          emptyDir:
            sizeLimit: {{ $root.Values.tmpSizeLimit }}
{{- end -}}

{{/* NetworkPolicy egress rules (templates/networkpolicy.yaml). */}}
{{- define "maas.egressDns" -}}
# DNS, from the cluster's resolver only.
- to:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ .dnsNamespace }}
  ports:
    - {port: 53, protocol: UDP}
    - {port: 53, protocol: TCP}
{{- end -}}

{{- define "maas.egressTo" -}}
- to:
    {{- range .cidrs }}
    - ipBlock:
        cidr: {{ . }}
    {{- end }}
  ports:
    - {port: {{ .port }}, protocol: TCP}
{{- end -}}

{{- define "maas.egressHttps" -}}
# HTTPS out, never to the cloud metadata service{{ if .except }} or private networks{{ end }}.
- to:
    - ipBlock:
        cidr: 0.0.0.0/0
        except:
          - 169.254.0.0/16
          {{- range .except }}
          - {{ . }}
          {{- end }}
  ports:
    - {port: 443, protocol: TCP}
{{- end -}}
