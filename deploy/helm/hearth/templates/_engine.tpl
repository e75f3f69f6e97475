{{/*
One engine's pod template, for every kind: (dict "ctx" $ "engine" $e). The Deployment (kind
hearth) and the StatefulSet (vllm, ollama) wrap it.
*/}}

{{/*
Tolerations, merged by concatenation: engineDefaults.tolerations, then the engine's own,
then the spot toleration (spot: true), then the GPU one (an nvidia.com/* resource).
*/}}
{{- define "hearth.engine.tolerations" -}}
{{- $e := .engine }}
{{- $d := .ctx.Values.engineDefaults }}
{{- $t := concat (default list $d.tolerations) (default list $e.tolerations) }}
{{- if $e.spot }}
{{- $t = append $t (dict "key" "kubernetes.azure.com/scalesetpriority" "operator" "Equal" "value" "spot" "effect" "NoSchedule") }}
{{- end }}
{{- if and $d.gpuToleration (include "hearth.engine.gpu" $e) }}
{{- $t = append $t (dict "key" "nvidia.com/gpu" "operator" "Exists" "effect" "NoSchedule") }}
{{- end }}
{{- with uniq $t }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The engine's affinity (or engineDefaults'), plus a preference for spot nodes. */}}
{{- define "hearth.engine.affinity" -}}
{{- $e := .engine }}
{{- $aff := deepCopy (default (default dict .ctx.Values.engineDefaults.affinity) $e.affinity) }}
{{- if $e.spot }}
{{- $na := default dict $aff.nodeAffinity }}
{{- $pref := default list $na.preferredDuringSchedulingIgnoredDuringExecution }}
{{- $term := dict "weight" 100 "preference" (dict "matchExpressions" (list (dict "key" "kubernetes.azure.com/scalesetpriority" "operator" "In" "values" (list "spot")))) }}
{{- $_ := set $na "preferredDuringSchedulingIgnoredDuringExecution" (append $pref $term) }}
{{- $_ := set $aff "nodeAffinity" $na }}
{{- end }}
{{- with $aff }}
{{- toYaml . }}
{{- end }}
{{- end }}

{{/* The model cache: the claim an engine mounts, or nothing. */}}
{{- define "hearth.engine.modelCacheClaim" -}}
{{- $e := .engine }}
{{- if and $e.modelCache $e.modelCache.volume }}
{{- $c := index .ctx.Values.modelCaches $e.modelCache.volume }}
{{- if not $c }}
{{- fail (printf "engines[%s].modelCache.volume: %q is not a key of modelCaches" $e.name $e.modelCache.volume) }}
{{- end }}
{{- default (include "hearth.componentName" (dict "ctx" .ctx "component" (printf "models-%s" $e.modelCache.volume))) $c.existingClaim }}
{{- end }}
{{- end }}

{{- define "hearth.engine.modelsPath" -}}
{{- $e := .engine }}
{{- if and $e.modelCache $e.modelCache.mountPath }}{{ $e.modelCache.mountPath }}{{ else }}/models{{ end }}
{{- end }}

{{/*
Container security per kind. Hearth's engine meets Pod Security "restricted" fully. vLLM and
Ollama images run as root by default; here they run as uid 1000 with HOME and caches on
writable volumes (unverified on a real GPU here: no cluster, no GPU). vLLM keeps a writable
root filesystem: torch, Triton and FlashInfer write JIT caches to paths not all of which can
be redirected; that is the one accepted exception, overridable per engine.
*/}}
{{- define "hearth.engine.uid" -}}
{{- if eq .kind "hearth" }}10001{{ else }}1000{{ end }}
{{- end }}

{{- define "hearth.engine.securityContext" -}}
{{- $e := .engine }}
{{- $sc := include "hearth.containerSecurityContext" .ctx | fromYaml }}
{{- if eq $e.kind "vllm" }}
{{- $_ := set $sc "readOnlyRootFilesystem" false }}
{{- end }}
{{- toYaml (mergeOverwrite $sc (default dict $e.securityContext)) }}
{{- end }}

{{- define "hearth.engine.probe" -}}
httpGet:
  path: {{ .path }}
  port: http
periodSeconds: {{ .period }}
timeoutSeconds: 5
failureThreshold: {{ .failures }}
{{- end }}

{{- define "hearth.engine.podTemplate" -}}
{{- $ctx := .ctx }}
{{- $e := .engine }}
{{- $d := $ctx.Values.engineDefaults }}
{{- $name := include "hearth.engineName" . }}
{{- $models := include "hearth.engine.modelsPath" . }}
{{- $claim := include "hearth.engine.modelCacheClaim" . }}
{{- $preStop := int (default $d.preStopSleepSeconds $e.preStopSleepSeconds) }}
{{- $startDefaults := dict "hearth" (dict "periodSeconds" 5 "failureThreshold" 60) "vllm" (dict "periodSeconds" 10 "failureThreshold" 180) "ollama" (dict "periodSeconds" 5 "failureThreshold" 60) }}
{{- $start := mergeOverwrite (deepCopy (index $startDefaults $e.kind)) (default dict $e.startupProbe) -}}
metadata:
  labels:
    {{- include "hearth.labels" (dict "ctx" $ctx "component" "engine" "engine" $e) | nindent 4 }}
  {{- with $e.podAnnotations }}
  annotations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
spec:
  serviceAccountName: {{ $name }}
  automountServiceAccountToken: false
  {{- with include "hearth.imagePullSecrets" $ctx }}{{ . | nindent 2 }}{{ end }}
  {{- with $e.runtimeClassName }}
  runtimeClassName: {{ . }}
  {{- end }}
  securityContext:
    {{- include "hearth.podSecurityContext" (dict "uid" (include "hearth.engine.uid" $e)) | nindent 4 }}
  # The preStop sleep keeps the pod serving its running streams after it left the
  # Service; then the engine gets SIGTERM and the rest of the grace period to stop.
  terminationGracePeriodSeconds: {{ default $d.terminationGracePeriodSeconds $e.terminationGracePeriodSeconds }}
  {{- if and (eq $e.kind "ollama") $e.pull }}
  initContainers:
    # Pulls the listed models into the model volume before the server starts; a model
    # already there is used even when the registry cannot be reached.
    - name: pull
      image: {{ include "hearth.imageRef" (mergeOverwrite (deepCopy $d.images.ollama) (default dict $e.image)) }}
      imagePullPolicy: {{ $d.images.ollama.pullPolicy }}
      command:
        - sh
        - -c
        - |
          ollama serve >/tmp/pull-serve.log 2>&1 &
          until ollama list >/dev/null 2>&1; do sleep 1; done
          for m in "$@"; do
            echo "pulling $m"
            ollama pull "$m" || ollama show "$m" >/dev/null || exit 1
          done
        - pull
        {{- range $e.pull }}
        - {{ . | quote }}
        {{- end }}
      env:
        - name: OLLAMA_HOST
          value: 127.0.0.1:11434
        - name: OLLAMA_MODELS
          value: {{ $models }}/ollama
        - name: HOME
          value: /home/engine
      resources:
        requests: {cpu: 100m, memory: 256Mi}
        limits: {cpu: "1", memory: 1Gi}
      securityContext:
        {{- include "hearth.engine.securityContext" . | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        - {name: home, mountPath: /home/engine}
        - {name: models, mountPath: {{ $models }}}
  {{- end }}
  containers:
    - name: {{ $e.kind }}
      {{- if eq $e.kind "hearth" }}
      image: {{ include "hearth.engineImage" (dict "ctx" $ctx "override" $e.image) }}
      imagePullPolicy: {{ (mergeOverwrite (deepCopy $ctx.Values.image) (default dict $e.image)).pullPolicy }}
      args: [engine]
      {{- else }}
      {{- $img := mergeOverwrite (deepCopy (index $d.images $e.kind)) (default dict $e.image) }}
      image: {{ include "hearth.imageRef" $img }}
      imagePullPolicy: {{ $img.pullPolicy }}
      {{- end }}
      {{- if eq $e.kind "vllm" }}
      command: [vllm, serve]
      args:
        - {{ required (printf "engines[%s].model (the Hugging Face id or a path on the model cache) is required for kind vllm" $e.name) $e.model | quote }}
        - --host=0.0.0.0
        - --port=8000
        - --served-model-name
        {{- range $e.models }}
        - {{ default .name .upstream | quote }}
        {{- end }}
        {{- range $e.extraArgs }}
        - {{ . | quote }}
        {{- end }}
      {{- else if eq $e.kind "ollama" }}
      args: [serve]
      {{- end }}
      env:
        {{- if eq $e.kind "hearth" }}
        - name: HEARTH_HOST
          value: 0.0.0.0
        - name: HEARTH_PORT
          value: "8081"
        - name: HEARTH_DATA_DIR
          value: /var/lib/hearth
        - name: HEARTH_LOG_LEVEL
          value: {{ $ctx.Values.hearth.logLevel | quote }}
        - name: HEARTH_LOG_FORMAT
          value: {{ $ctx.Values.hearth.logFormat | quote }}
        - name: HEARTH_SHUTDOWN_GRACE_SECONDS
          value: {{ $ctx.Values.hearth.shutdownGraceSeconds | quote }}
        - name: HEARTH_ENGINE_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "hearth.engineKeys.secretName" $ctx }}
              key: {{ $e.name }}
        {{- with $e.localEngines }}
        # The engine's own models (llama.cpp GGUF files, the embedder); unset: the bundled ones.
        - name: HEARTH_ENGINES
          value: {{ toJson . | toJson }}
        {{- end }}
        {{- else if eq $e.kind "vllm" }}
        - name: VLLM_API_KEY
          valueFrom:
            secretKeyRef:
              name: {{ include "hearth.engineKeys.secretName" $ctx }}
              key: {{ $e.name }}
        {{- with $e.hfToken }}
        - name: HF_TOKEN
          valueFrom:
            secretKeyRef:
              name: {{ .secretName }}
              key: {{ default "token" .secretKey }}
        {{- end }}
        # Everything vLLM, torch and Triton cache goes to writable volumes; weights to the
        # model cache, shared by replicas.
        - name: HOME
          value: /home/engine
        - name: XDG_CACHE_HOME
          value: /home/engine/.cache
        - name: HF_HOME
          value: {{ $models }}/huggingface
        {{- if and $ctx.Values.networkPolicy.enabled (not $e.egress) }}
        # No egress listed: the weights must be on the model cache already; say so at once
        # instead of timing out on downloads the NetworkPolicy blocks.
        - name: HF_HUB_OFFLINE
          value: "1"
        {{- end }}
        - name: VLLM_NO_USAGE_STATS
          value: "1"
        - name: DO_NOT_TRACK
          value: "1"
        {{- else if eq $e.kind "ollama" }}
        - name: OLLAMA_HOST
          value: 0.0.0.0:11434
        - name: OLLAMA_MODELS
          value: {{ $models }}/ollama
        - name: OLLAMA_KEEP_ALIVE
          value: {{ default "5m" $e.keepAlive | quote }}
        - name: HOME
          value: /home/engine
        {{- end }}
        {{- with $e.extraEnv }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
      ports:
        - name: http
          containerPort: {{ include "hearth.engine.port" $e }}
          protocol: TCP
      {{- $paths := dict "hearth" (list "/healthz" "/readyz") "vllm" (list "/health" "/health") "ollama" (list "/" "/api/version") }}
      {{- $live := index (index $paths $e.kind) 0 }}
      {{- $ready := index (index $paths $e.kind) 1 }}
      # Sized for loading weights: periodSeconds x failureThreshold.
      startupProbe:
        {{- include "hearth.engine.probe" (dict "path" $live "period" $start.periodSeconds "failures" $start.failureThreshold) | nindent 8 }}
      livenessProbe:
        {{- include "hearth.engine.probe" (dict "path" $live "period" 10 "failures" 3) | nindent 8 }}
      readinessProbe:
        {{- include "hearth.engine.probe" (dict "path" $ready "period" 5 "failures" 2) | nindent 8 }}
      {{- if $preStop }}
      lifecycle:
        preStop:
          sleep:
            seconds: {{ $preStop }}
      {{- end }}
      resources:
        {{- toYaml (required (printf "engines[%s].resources is required" $e.name) $e.resources) | nindent 8 }}
      securityContext:
        {{- include "hearth.engine.securityContext" . | nindent 8 }}
      volumeMounts:
        - {name: tmp, mountPath: /tmp}
        {{- if eq $e.kind "hearth" }}
        - {name: data, mountPath: /var/lib/hearth}
        {{- else }}
        - {name: home, mountPath: /home/engine}
        {{- end }}
        {{- if or $claim (ne $e.kind "hearth") }}
        - {name: models, mountPath: {{ $models }}}
        {{- end }}
        {{- if eq $e.kind "vllm" }}
        - {name: shm, mountPath: /dev/shm}
        {{- end }}
  volumes:
    - name: tmp
      emptyDir: {}
    {{- if eq $e.kind "hearth" }}
    - name: data
      emptyDir: {}
    {{- else }}
    - name: home
      emptyDir: {}
    {{- end }}
    {{- if $claim }}
    - name: models
      persistentVolumeClaim:
        claimName: {{ $claim }}
    {{- else if ne $e.kind "hearth" }}
    - name: models
      emptyDir: {}
    {{- end }}
    {{- if eq $e.kind "vllm" }}
    # vLLM's workers exchange tensors through shared memory; the default 64 MiB is too small.
    - name: shm
      emptyDir:
        medium: Memory
        sizeLimit: {{ default "8Gi" $e.shmSize }}
    {{- end }}
  {{- $ns := mergeOverwrite (deepCopy (default dict $d.nodeSelector)) (default dict $e.nodeSelector) }}
  {{- with $ns }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with include "hearth.engine.affinity" . }}
  affinity:
    {{- . | nindent 4 }}
  {{- end }}
  {{- with include "hearth.engine.tolerations" . }}
  tolerations:
    {{- . | nindent 4 }}
  {{- end }}
{{- end }}
