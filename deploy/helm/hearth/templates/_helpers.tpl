{{/*
Names, labels, images, security contexts, secrets and the gateway's engine list: defined
once here, used by every template.
*/}}

{{- define "hearth.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* `<release>-hearth`, or the release name alone when it already says hearth. */}}
{{- define "hearth.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of one component's objects: (dict "ctx" $ "component" "web"). */}}
{{- define "hearth.componentName" -}}
{{- printf "%s-%s" (include "hearth.fullname" .ctx) .component | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Name of one engine's objects: (dict "ctx" $ "engine" $e). StatefulSet pods add a suffix and
their controller-revision-hash label must fit 63 characters, hence the limit of 52.
*/}}
{{- define "hearth.engineName" -}}
{{- $n := printf "%s-engine-%s" (include "hearth.fullname" .ctx) .engine.name }}
{{- if gt (len $n) 52 }}
{{- fail (printf "engines: the name %q (from the release and engine %q) is %d characters; the limit is 52: shorten the engine's name or set fullnameOverride" $n .engine.name (len $n)) }}
{{- end }}
{{- $n }}
{{- end }}

{{- define "hearth.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Selector labels: (dict "ctx" $ "component" "web") or, for an engine, with "engine" $e, or
for a benchmark, with "benchmark" $b.
*/}}
{{- define "hearth.selectorLabels" -}}
app.kubernetes.io/name: {{ include "hearth.name" .ctx }}
app.kubernetes.io/instance: {{ .ctx.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- if .engine }}
hearth-llm.io/engine: {{ .engine.name }}
{{- end }}
{{- if .benchmark }}
hearth-llm.io/benchmark: {{ .benchmark.name }}
{{- end }}
{{- end }}

{{/* Every object's labels: the selector labels plus version, chart and commonLabels. */}}
{{- define "hearth.labels" -}}
{{ include "hearth.selectorLabels" . }}
app.kubernetes.io/part-of: hearth
app.kubernetes.io/version: {{ .ctx.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .ctx.Release.Service }}
helm.sh/chart: {{ include "hearth.chart" .ctx }}
{{- if .engine }}
hearth-llm.io/engine-kind: {{ .engine.kind }}
{{- end }}
{{- with .ctx.Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* Labels every pod of this release carries: what the default-deny policy selects. */}}
{{- define "hearth.releaseSelector" -}}
app.kubernetes.io/name: {{ include "hearth.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* An image reference from {repository, tag, digest}; the tag is required (no `latest`). */}}
{{- define "hearth.imageRef" -}}
{{- if .digest }}
{{- printf "%s:%s@%s" .repository .tag .digest }}
{{- else }}
{{- printf "%s:%s" .repository .tag }}
{{- end }}
{{- end }}

{{- define "hearth.image" -}}
{{- include "hearth.imageRef.hearth" (dict "ctx" . "image" .Values.image) }}
{{- end }}

{{/* The Hearth image with an engine's `image` laid over it: (dict "ctx" $ "override" $e.image). */}}
{{- define "hearth.engineImage" -}}
{{- include "hearth.imageRef.hearth" (dict "ctx" .ctx "image" (mergeOverwrite (deepCopy .ctx.Values.image) (default dict .override))) }}
{{- end }}

{{- define "hearth.imageRef.hearth" -}}
{{- include "hearth.imageRef" (dict "repository" .image.repository "tag" (default .ctx.Chart.AppVersion .image.tag) "digest" .image.digest) }}
{{- end }}

{{- define "hearth.imagePullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* Pod Security "restricted" for a pod running as `uid`: (dict "uid" 10001). */}}
{{- define "hearth.podSecurityContext" -}}
runAsNonRoot: true
runAsUser: {{ .uid }}
runAsGroup: {{ .uid }}
fsGroup: {{ .uid }}
fsGroupChangePolicy: OnRootMismatch
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{- define "hearth.containerSecurityContext" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
runAsNonRoot: true
capabilities:
  drop: [ALL]
seccompProfile:
  type: RuntimeDefault
{{- end }}

{{/* The secret of a generated value, kept across upgrades: (dict "ctx" $ "name" N "key" K). */}}
{{- define "hearth.keptSecretValue" -}}
{{- $existing := lookup "v1" "Secret" .ctx.Release.Namespace .name }}
{{- if and $existing $existing.data (hasKey $existing.data .key) }}
{{- index $existing.data .key | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}

{{/* PostgreSQL: the Secret and key holding HEARTH_DATABASE_URL. */}}
{{- define "hearth.postgresql.fullname" -}}
{{- include "hearth.componentName" (dict "ctx" . "component" "postgresql") }}
{{- end }}

{{- define "hearth.database.secretName" -}}
{{- $pg := .Values.postgresql }}
{{- if eq $pg.mode "external" }}
{{- required "postgresql.external.existingSecret is required when postgresql.mode is external" $pg.external.existingSecret }}
{{- else if eq $pg.mode "bundled" }}
{{- default (include "hearth.postgresql.fullname" .) $pg.bundled.existingSecret }}
{{- else }}
{{- printf "%s-app" (include "hearth.postgresql.fullname" .) }}
{{- end }}
{{- end }}

{{- define "hearth.database.secretKey" -}}
{{- $pg := .Values.postgresql }}
{{- if eq $pg.mode "external" }}{{ $pg.external.secretKey }}
{{- else if eq $pg.mode "bundled" }}url
{{- else }}uri
{{- end }}
{{- end }}

{{/* Labels of the PostgreSQL pods web and worker connect to (bundled or CloudNativePG). */}}
{{- define "hearth.database.podSelector" -}}
{{- if eq .Values.postgresql.mode "cloudnative-pg" }}
cnpg.io/cluster: {{ include "hearth.postgresql.fullname" . }}
{{- else }}
{{- include "hearth.selectorLabels" (dict "ctx" . "component" "postgresql") }}
{{- end }}
{{- end }}

{{- define "hearth.redis.fullname" -}}
{{- include "hearth.componentName" (dict "ctx" . "component" "redis") }}
{{- end }}

{{- define "hearth.redis.secretName" -}}
{{- $r := .Values.redis }}
{{- if eq $r.mode "external" }}
{{- required "redis.external.existingSecret is required when redis.mode is external" $r.external.existingSecret }}
{{- else }}
{{- default (include "hearth.redis.fullname" .) $r.bundled.existingSecret }}
{{- end }}
{{- end }}

{{- define "hearth.redis.secretKey" -}}
{{- if eq .Values.redis.mode "external" }}{{ .Values.redis.external.secretKey }}{{ else }}url{{ end }}
{{- end }}

{{- define "hearth.engineKeys.secretName" -}}
{{- default (include "hearth.componentName" (dict "ctx" . "component" "engine-keys")) .Values.engineKeys.existingSecret }}
{{- end }}

{{/* The port an engine listens on, by kind. */}}
{{- define "hearth.engine.port" -}}
{{- $ports := dict "hearth" 8081 "vllm" 8000 "ollama" 11434 }}
{{- index $ports .kind }}
{{- end }}

{{/* "true" when an engine requests an NVIDIA resource (whole GPUs or MIG slices). */}}
{{- define "hearth.engine.gpu" -}}
{{- $gpu := false }}
{{- range $section := list "limits" "requests" }}
{{- range $name, $_ := (index (default dict $.resources) $section | default dict) }}
{{- if hasPrefix "nvidia.com/" $name }}{{ $gpu = true }}{{ end }}
{{- end }}
{{- end }}
{{- if $gpu }}true{{ end }}
{{- end }}

{{/*
Whether the gateway authenticates to an engine with a key, and which env var holds it:
Hearth's engine and vLLM get one the chart generates; an external one its own Secret's;
Ollama has no authentication (NetworkPolicies are its only gate).
*/}}
{{- define "hearth.engine.hasKey" -}}
{{- if or (eq .kind "hearth") (eq .kind "vllm") }}true
{{- else if and (eq .kind "external") .apiKeySecret }}true
{{- end }}
{{- end }}

{{/* The gateway's view of one engine, as JSON: (dict "ctx" $ "engine" $e "index" $i). */}}
{{- define "hearth.engine.gatewayEntry" -}}
{{- $e := .engine }}
{{- $entry := dict "name" $e.name }}
{{- if eq $e.kind "external" }}
{{- $_ := set $entry "kind" (default "openai" $e.api) }}
{{- $_ := set $entry "base_url" $e.url }}
{{- else if eq $e.kind "ollama" }}
{{- $_ := set $entry "kind" "ollama" }}
{{- $_ := set $entry "base_url" (printf "http://%s.%s.svc:%s" (include "hearth.engineName" .) .ctx.Release.Namespace (include "hearth.engine.port" $e)) }}
{{- else }}
{{- $_ := set $entry "kind" "openai" }}
{{- $_ := set $entry "base_url" (printf "http://%s.%s.svc:%s/v1" (include "hearth.engineName" .) .ctx.Release.Namespace (include "hearth.engine.port" $e)) }}
{{- end }}
{{- if eq $e.kind "ollama" }}
{{- $_ := set $entry "keep_alive" (default "5m" $e.keepAlive) }}
{{- end }}
{{- if include "hearth.engine.hasKey" $e }}
{{- /* Kubernetes expands $(VAR) from the env vars defined before HEARTH_ENGINES. */}}
{{- $_ := set $entry "api_key" (printf "$(HEARTH_ENGINE_KEY_%d)" .index) }}
{{- end }}
{{- with $e.models }}
{{- $_ := set $entry "models" . }}
{{- end }}
{{- toJson $entry }}
{{- end }}

{{/* HEARTH_ENGINES for web and worker: every entry of `engines`, in order. */}}
{{- define "hearth.engines.json" -}}
{{- $out := list }}
{{- $seen := dict }}
{{- range $i, $e := .Values.engines }}
{{- if hasKey $seen $e.name }}
{{- fail (printf "engines[%d].name: %q is used twice; engine names must be unique" $i $e.name) }}
{{- end }}
{{- $_ := set $seen $e.name true }}
{{- $out = append $out (include "hearth.engine.gatewayEntry" (dict "ctx" $ "engine" $e "index" $i) | fromJson) }}
{{- end }}
{{- toJson $out }}
{{- end }}

{{/* Environment of web, worker and migrations. */}}
{{- define "hearth.databaseEnv" -}}
- name: HEARTH_DATA_DIR
  value: /var/lib/hearth
- name: HEARTH_LOG_LEVEL
  value: {{ .Values.hearth.logLevel | quote }}
- name: HEARTH_LOG_FORMAT
  value: {{ .Values.hearth.logFormat | quote }}
- name: HEARTH_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hearth.database.secretName" . }}
      key: {{ include "hearth.database.secretKey" . }}
{{- end }}

{{- define "hearth.env" -}}
{{ include "hearth.databaseEnv" . }}
{{- if ne .Values.redis.mode "none" }}
- name: HEARTH_REDIS_URL
  valueFrom:
    secretKeyRef:
      name: {{ include "hearth.redis.secretName" . }}
      key: {{ include "hearth.redis.secretKey" . }}
{{- end }}
- name: HEARTH_MAX_REQUEST_BYTES
  value: {{ .Values.hearth.maxRequestBytes | int64 | quote }}
- name: HEARTH_RAG_MAX_FILE_BYTES
  value: {{ .Values.hearth.ragMaxFileBytes | int64 | quote }}
- name: HEARTH_SHUTDOWN_GRACE_SECONDS
  value: {{ .Values.hearth.shutdownGraceSeconds | quote }}
- name: HEARTH_RAG_EMBEDDING_MODEL
  value: {{ .Values.hearth.ragEmbeddingModel | quote }}
{{- with .Values.hearth.defaultModel }}
- name: HEARTH_DEFAULT_MODEL
  value: {{ . | quote }}
{{- end }}
{{- range $name := keys .Values.hearth.env | sortAlpha }}
- name: {{ $name }}
  value: {{ index $.Values.hearth.env $name | toString | quote }}
{{- end }}
{{- range .Values.hearth.secretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .secretKey }}
{{- end }}
{{- range $i, $e := .Values.engines }}
{{- if include "hearth.engine.hasKey" $e }}
- name: HEARTH_ENGINE_KEY_{{ $i }}
  valueFrom:
    secretKeyRef:
      {{- if eq $e.kind "external" }}
      name: {{ $e.apiKeySecret.name }}
      key: {{ $e.apiKeySecret.key }}
      {{- else }}
      name: {{ include "hearth.engineKeys.secretName" $ }}
      key: {{ $e.name }}
      {{- end }}
{{- end }}
{{- end }}
- name: HEARTH_ENGINES
  value: {{ include "hearth.engines.json" . | toJson }}
{{- end }}

{{/* /tmp and the data directory, for web and worker. */}}
{{- define "hearth.dataVolumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  {{- if .Values.persistence.uploads.enabled }}
  persistentVolumeClaim:
    claimName: {{ default (include "hearth.componentName" (dict "ctx" . "component" "uploads")) .Values.persistence.uploads.existingClaim }}
  {{- else }}
  emptyDir: {}
  {{- end }}
{{- end }}

{{- define "hearth.dataVolumeMounts" -}}
- name: tmp
  mountPath: /tmp
- name: data
  mountPath: /var/lib/hearth
{{- end }}

{{/* Whether a component runs more than one pod (then it gets a PDB). */}}
{{- define "hearth.web.multiple" -}}
{{- $w := .Values.web }}
{{- if $w.keda.enabled }}
{{- if gt (int $w.keda.minReplicas) 1 }}true{{ end }}
{{- else if $w.autoscaling.enabled }}
{{- if gt (int $w.autoscaling.minReplicas) 1 }}true{{ end }}
{{- else if gt (int $w.replicas) 1 }}true
{{- end }}
{{- end }}

{{- define "hearth.worker.multiple" -}}
{{- $w := .Values.worker }}
{{- if or (and $w.keda.enabled (gt (int $w.keda.minReplicas) 1)) (and (not $w.keda.enabled) (gt (int $w.replicas) 1)) }}true{{ end }}
{{- end }}

{{/* The readable rule for a generated Secret: created once, kept on upgrade and uninstall. */}}
{{- define "hearth.keepAnnotation" -}}
helm.sh/resource-policy: keep
{{- end }}

{{/*
When the migration Job runs. Pre-upgrade always. At install, pre-install only for an
external database: a bundled or CloudNativePG one is created by this release, so a
pre-install hook would wait for a database that does not exist yet; those migrate
post-install (and web pods migrate at start anyway, under an advisory lock).
*/}}
{{- define "hearth.migrations.hooks" -}}
{{- if eq .Values.postgresql.mode "external" }}pre-install,pre-upgrade{{ else }}post-install,pre-upgrade{{ end }}
{{- end }}

{{/* The Secret holding the Ingress certificate, or nothing without TLS. */}}
{{- define "hearth.tls.secretName" -}}
{{- $t := .Values.tls }}
{{- if eq $t.mode "existingSecret" }}
{{- required "tls.secretName is required when tls.mode is existingSecret" $t.secretName }}
{{- else if eq $t.mode "certManager" }}
{{- default (include "hearth.componentName" (dict "ctx" . "component" "tls")) $t.secretName }}
{{- end }}
{{- end }}

{{/* The largest body Hearth accepts: an API request, or an upload (its limit + 64 KiB of form). */}}
{{- define "hearth.maxBodyBytes" -}}
{{- max (int64 .Values.hearth.maxRequestBytes) (add (int64 .Values.hearth.ragMaxFileBytes) 65536) }}
{{- end }}

{{/* NetworkPolicy egress rules to ip blocks: [{cidr, except, ports}]. */}}
{{- define "hearth.networkPolicy.ipEgress" -}}
{{- range . }}
- to:
    - ipBlock:
        cidr: {{ .cidr }}
        {{- with .except }}
        except:
          {{- toYaml . | nindent 10 }}
        {{- end }}
  {{- with .ports }}
  ports:
    {{- range . }}
    - port: {{ . }}
      protocol: TCP
    {{- end }}
  {{- end }}
{{- end }}
{{- end }}

{{/* Egress of Hearth's database clients (web, worker, migrations): PostgreSQL. */}}
{{- define "hearth.networkPolicy.databaseEgress" -}}
{{- if eq .Values.postgresql.mode "external" }}
{{- include "hearth.networkPolicy.ipEgress" .Values.postgresql.external.egress }}
{{- else }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hearth.database.podSelector" . | nindent 10 }}
  ports:
    - port: 5432
      protocol: TCP
{{- end }}
{{- end }}

{{/* Egress of web and worker: PostgreSQL, Redis, every engine (in-cluster or listed ip blocks). */}}
{{- define "hearth.networkPolicy.clientEgress" -}}
{{ include "hearth.networkPolicy.databaseEgress" . }}
{{- if eq .Values.redis.mode "external" }}
{{ include "hearth.networkPolicy.ipEgress" .Values.redis.external.egress }}
{{- else if eq .Values.redis.mode "bundled" }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hearth.selectorLabels" (dict "ctx" . "component" "redis") | nindent 10 }}
  ports:
    - port: 6379
      protocol: TCP
{{- end }}
{{- range .Values.engines }}
{{- if eq .kind "external" }}
{{ include "hearth.networkPolicy.ipEgress" (default list .egress) }}
{{- else }}
- to:
    - podSelector:
        matchLabels:
          {{- include "hearth.selectorLabels" (dict "ctx" $ "component" "engine" "engine" .) | nindent 10 }}
  ports:
    - port: {{ include "hearth.engine.port" . }}
      protocol: TCP
{{- end }}
{{- end }}
{{- end }}

{{/* A `from` peer for pods of a namespace: (dict "namespaceSelector" ... "podSelector" ...). */}}
{{- define "hearth.networkPolicy.namespacePeer" -}}
- namespaceSelector:
    {{- toYaml .namespaceSelector | nindent 4 }}
  {{- with .podSelector }}
  podSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The engine the chat test talks to: the first in-cluster one serving a chat model. */}}
{{- define "hearth.tests.chatTarget" -}}
{{- $found := dict }}
{{- range $i, $e := .Values.engines }}
{{- if and (not $found.name) (ne $e.kind "external") }}
{{- $model := "" }}
{{- range $e.models }}{{ if and (not $model) (ne (default "chat" .type) "embedding") }}{{ $model = default .name .upstream }}{{ end }}{{ end }}
{{- if and (not $model) (eq $e.kind "ollama") $e.pull }}{{ $model = first $e.pull }}{{ end }}
{{- if $model }}
{{- $_ := set $found "name" $e.name }}
{{- $_ := set $found "model" $model }}
{{- $_ := set $found "kind" $e.kind }}
{{- $_ := set $found "url" (printf "http://%s:%s/v1/chat/completions" (include "hearth.engineName" (dict "ctx" $ "engine" $e)) (include "hearth.engine.port" $e)) }}
{{- end }}
{{- end }}
{{- end }}
{{- toJson $found }}
{{- end }}

{{/* A helm test pod's spec around one python snippet: (dict "ctx" $ "name" N "env" list "script" S). */}}
{{- define "hearth.tests.pod" -}}
{{- $ctx := .ctx }}
apiVersion: v1
kind: Pod
metadata:
  name: {{ include "hearth.componentName" (dict "ctx" $ctx "component" (printf "test-%s" .name)) }}
  namespace: {{ $ctx.Release.Namespace }}
  labels:
    {{- include "hearth.labels" (dict "ctx" $ctx "component" "test") | nindent 4 }}
  annotations:
    helm.sh/hook: test
    helm.sh/hook-delete-policy: before-hook-creation,hook-succeeded
spec:
  restartPolicy: Never
  # The web identity (no token mounted): the tests need no API access of their own.
  serviceAccountName: {{ include "hearth.componentName" (dict "ctx" $ctx "component" "web") }}
  automountServiceAccountToken: false
  {{- with include "hearth.imagePullSecrets" $ctx }}{{ . | nindent 2 }}{{ end }}
  securityContext:
    {{- include "hearth.podSecurityContext" (dict "uid" 10001) | nindent 4 }}
  containers:
    - name: test
      image: {{ include "hearth.image" $ctx }}
      imagePullPolicy: {{ $ctx.Values.image.pullPolicy }}
      # The Hearth image has Python, not curl.
      command: [python, -c, {{ .script | toJson }}]
      {{- with .env }}
      env:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      resources:
        {{- toYaml $ctx.Values.tests.resources | nindent 8 }}
      securityContext:
        {{- include "hearth.containerSecurityContext" $ctx | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
  volumes:
    - name: tmp
      emptyDir: {}
{{- end }}
