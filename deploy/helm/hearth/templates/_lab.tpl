{{/*
The model lab's benchmarks (`lab.benchmarks`): names, run ids, arguments and the pieces of
their pods, defined once here for the Jobs (lab-benchmark-job.yaml) and for the Argo
Workflow (lab-benchmark-workflow.yaml).
*/}}

{{/*
The base name of a benchmark's objects: (dict "ctx" $ "bench" $b). A Job adds "-" and 8
characters of its spec's hash, and a Job's name is a label value of its pods (at most 63
characters), hence the limit of 54.
*/}}
{{- define "hearth.lab.name" -}}
{{- $n := printf "%s-bench-%s" (include "hearth.fullname" .ctx) .bench.name }}
{{- if gt (len $n) 54 }}
{{- fail (printf "lab.benchmarks: the name %q (from the release and benchmark %q) is %d characters; the limit is 54: shorten the benchmark's name or set fullnameOverride" $n .bench.name (len $n)) }}
{{- end }}
{{- $n }}
{{- end }}

{{/* Fails unless benchmark names and run ids are unique (two pods driving one run clash). */}}
{{- define "hearth.lab.check" -}}
{{- $names := dict }}
{{- $runs := dict }}
{{- range $i, $b := .Values.lab.benchmarks }}
{{- if hasKey $names $b.name }}
{{- fail (printf "lab.benchmarks[%d].name: %q is used twice; benchmark names must be unique" $i $b.name) }}
{{- end }}
{{- $_ := set $names $b.name true }}
{{- $run := include "hearth.lab.runId" (dict "ctx" $ "bench" $b) }}
{{- if hasKey $runs $run }}
{{- fail (printf "lab.benchmarks[%d].runId: %s is already the run of benchmark %q; each benchmark needs its own run" $i $run (index $runs $run)) }}
{{- end }}
{{- $_ := set $runs $run $b.name }}
{{- end }}
{{- end }}

{{/* Where a benchmark sends its requests: its `target`, else this release's gateway. */}}
{{- define "hearth.lab.url" -}}
{{- if .bench.target }}
{{- .bench.target }}
{{- else }}
{{- printf "http://%s.%s.svc:%v/v1" (include "hearth.componentName" (dict "ctx" .ctx "component" "web")) .ctx.Release.Namespace .ctx.Values.web.service.port }}
{{- end }}
{{- end }}

{{/* What the wait-for-target container asks until it answers below 500. */}}
{{- define "hearth.lab.readyUrl" -}}
{{- if .bench.target }}
{{- printf "%s/models" (trimSuffix "/" .bench.target) }}
{{- else }}
{{- printf "http://%s.%s.svc:%v/readyz" (include "hearth.componentName" (dict "ctx" .ctx "component" "web")) .ctx.Release.Namespace .ctx.Values.web.service.port }}
{{- end }}
{{- end }}

{{/* "true" when any benchmark asks this release's gateway (web needs to let it in). */}}
{{- define "hearth.lab.targetsWeb" -}}
{{- range .Values.lab.benchmarks }}{{ if not .target }}true{{ end }}{{ end }}
{{- end }}

{{- define "hearth.lab.hasKey" -}}
{{- if and .apiKey .apiKey.secretName }}true{{ end }}
{{- end }}

{{/*
The arguments that define the run, as JSON: target, model, the key's variable, then the
entry's own `args`. `hearth bench run` stores them with the run when it creates it, and
a later start under the same id resumes the stored run, whatever it is given.
*/}}
{{- define "hearth.lab.runArgs" -}}
{{- $args := list "--url" (include "hearth.lab.url" .) "--model" .bench.model }}
{{- if include "hearth.lab.hasKey" .bench }}
{{- $args = concat $args (list "--key-env" "BENCH_API_KEY") }}
{{- end }}
{{- toJson (concat $args (default list .bench.args)) }}
{{- end }}

{{/*
The run's id: the entry's `runId`, else a UUID derived from the namespace, the release,
the benchmark's name and the arguments that define the run, so that every pod of the Job,
and the Job of every later `helm upgrade`, resumes the same run, while a benchmark whose
arguments change becomes a new run (the stored one keeps its own spec). The SHA-256 of
those inputs laid out as RFC 9562's version 8 (its example of a name-based UUID from
SHA-256): version nibble 8, variant bits 10.
*/}}
{{- define "hearth.lab.runId" -}}
{{- if .bench.runId }}
{{- lower .bench.runId }}
{{- else }}
{{- $h := printf "hearth-bench\n%s\n%s\n%s\n%s" .ctx.Release.Namespace .ctx.Release.Name .bench.name (include "hearth.lab.runArgs" .) | sha256sum }}
{{- $variant := index (dict "0" "8" "1" "9" "2" "a" "3" "b" "4" "8" "5" "9" "6" "a" "7" "b" "8" "8" "9" "9" "a" "a" "b" "b" "c" "8" "d" "9" "e" "a" "f" "b") (substr 16 17 $h) }}
{{- printf "%s-%s-8%s-%s%s-%s" (substr 0 8 $h) (substr 8 12 $h) (substr 13 16 $h) $variant (substr 17 20 $h) (substr 20 32 $h) }}
{{- end }}
{{- end }}

{{/* `hearth bench run` with the run id, the stop behaviour and the run's arguments, as JSON. */}}
{{- define "hearth.lab.args" -}}
{{- $args := list "bench" "run" "--run-id" (include "hearth.lab.runId" .) "--name" .bench.name "--stopped-exit-code" "75" "--grace" (int64 .ctx.Values.lab.grace | toString) }}
{{- toJson (concat $args (include "hearth.lab.runArgs" . | fromJsonArray)) }}
{{- end }}

{{/* Seconds a benchmark pod gets after SIGTERM: the grace for in-flight requests, then 15 s to save. */}}
{{- define "hearth.lab.terminationGrace" -}}
{{- add (int64 .Values.lab.grace) 15 }}
{{- end }}

{{/* Labels of one benchmark's pods and objects: (dict "ctx" $ "bench" $b). */}}
{{- define "hearth.lab.labels" -}}
{{ include "hearth.labels" (dict "ctx" .ctx "component" "bench" "benchmark" .bench) }}
hearth-llm.io/run-id: {{ include "hearth.lab.runId" . }}
{{- end }}

{{/*
The first container of a benchmark pod: waits until the database takes connections and
the target answers (this release's web: /readyz, the database and every engine; another
target: any answer below 500 from …/models). Without it, a benchmark started with the
release (or on a new node) would fail its first requests, and a failed run fails the Job.
The Job's activeDeadlineSeconds bounds the wait.
*/}}
{{- define "hearth.lab.waitContainer" -}}
{{- $script := `
import os, socket, time, urllib.error, urllib.parse, urllib.request
database = urllib.parse.urlsplit(os.environ["HEARTH_DATABASE_URL"])
target = os.environ["READY_URL"]
def database_up():
    if not database.hostname:
        return True
    with socket.create_connection((database.hostname, database.port or 5432), timeout=5):
        return True
def target_up():
    try:
        with urllib.request.urlopen(target, timeout=10):
            return True
    except urllib.error.HTTPError as e:
        return e.code < 500
while True:
    waiting = []
    for name, up in (("the database", database_up), (target, target_up)):
        try:
            if not up():
                waiting.append(name)
        except OSError as e:
            waiting.append(f"{name} ({e})")
    if not waiting:
        break
    print("waiting for", ", ".join(waiting), flush=True)
    time.sleep(5)
` }}
- name: wait-for-target
  image: {{ include "hearth.image" .ctx }}
  imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
  # The Hearth image has Python, not curl.
  command: [python, -c, {{ $script | toJson }}]
  env:
    - name: HEARTH_DATABASE_URL
      valueFrom:
        secretKeyRef:
          name: {{ include "hearth.database.secretName" .ctx }}
          key: {{ include "hearth.database.secretKey" .ctx }}
    - name: READY_URL
      value: {{ include "hearth.lab.readyUrl" . | quote }}
  resources:
    {{- toYaml (default .ctx.Values.lab.resources .bench.resources) | nindent 4 }}
  securityContext:
    {{- include "hearth.containerSecurityContext" .ctx | nindent 4 }}
  volumeMounts:
    - name: tmp
      mountPath: /tmp
{{- end }}

{{/* The container running `hearth bench run`: (dict "ctx" $ "bench" $b "command" bool). */}}
{{- define "hearth.lab.container" -}}
name: bench
image: {{ include "hearth.image" .ctx }}
imagePullPolicy: {{ .ctx.Values.image.pullPolicy }}
{{- if .command }}
command: [hearth]
{{- end }}
args: {{ include "hearth.lab.args" . }}
env:
  {{- include "hearth.databaseEnv" .ctx | nindent 2 }}
  {{- if include "hearth.lab.hasKey" .bench }}
  - name: BENCH_API_KEY
    valueFrom:
      secretKeyRef:
        name: {{ .bench.apiKey.secretName }}
        key: {{ required (printf "lab.benchmarks: %s: apiKey.key is required with apiKey.secretName" .bench.name) .bench.apiKey.key }}
  {{- end }}
resources:
  {{- toYaml (default .ctx.Values.lab.resources .bench.resources) | nindent 2 }}
securityContext:
  {{- include "hearth.containerSecurityContext" .ctx | nindent 2 }}
volumeMounts:
  - name: tmp
    mountPath: /tmp
  - name: data
    mountPath: /var/lib/hearth
{{- end }}

{{/* The pod's volumes: /tmp and a data directory of its own (a benchmark keeps nothing there). */}}
{{- define "hearth.lab.volumes" -}}
- name: tmp
  emptyDir: {}
- name: data
  emptyDir: {}
{{- end }}

{{/* Where a benchmark's pods may run (e.g. a spot node pool). */}}
{{- define "hearth.lab.placement" -}}
{{- with .bench.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .bench.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .bench.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end }}

{{/* One benchmark's Job spec: (dict "ctx" $ "bench" $b). */}}
{{- define "hearth.lab.jobSpec" -}}
{{- $lab := .ctx.Values.lab }}
backoffLimit: {{ int64 $lab.backoffLimit }}
activeDeadlineSeconds: {{ int64 $lab.activeDeadlineSeconds }}
# A replacement pod starts only once the last one has stopped: never two pods on one run.
podReplacementPolicy: Failed
podFailurePolicy:
  rules:
    # Preempted, evicted, drained, or its node gone (a spot node's end): start again, not
    # counted against backoffLimit.
    - action: Ignore
      onPodConditions:
        - type: DisruptionTarget
          status: "True"
    # Stopped at a checkpoint (SIGTERM): the next pod resumes the run, not counted either.
    - action: Ignore
      onExitCodes:
        containerName: bench
        operator: In
        values: [75]
    # A failed run (1) or a wrong command line (2) will not get better by trying again.
    - action: FailJob
      onExitCodes:
        containerName: bench
        operator: In
        values: [1, 2]
template:
  metadata:
    labels:
      {{- include "hearth.lab.labels" . | nindent 6 }}
  spec:
    restartPolicy: Never
    serviceAccountName: {{ include "hearth.componentName" (dict "ctx" .ctx "component" "bench") }}
    automountServiceAccountToken: false
    {{- with include "hearth.imagePullSecrets" .ctx }}{{ . | nindent 4 }}{{ end }}
    securityContext:
      {{- include "hearth.podSecurityContext" (dict "uid" 10001) | nindent 6 }}
    terminationGracePeriodSeconds: {{ include "hearth.lab.terminationGrace" .ctx }}
    initContainers:
      {{- include "hearth.lab.waitContainer" . | nindent 6 }}
    containers:
      - {{- include "hearth.lab.container" . | nindent 8 }}
    volumes:
      {{- include "hearth.lab.volumes" . | nindent 6 }}
    {{- with include "hearth.lab.placement" . }}
    {{- . | nindent 4 }}
    {{- end }}
{{- end }}

{{/* The Argo Workflow's spec: every benchmark as a step, in the order of the values. */}}
{{- define "hearth.lab.workflowSpec" -}}
{{- $lab := .Values.lab }}
entrypoint: benchmarks
serviceAccountName: {{ include "hearth.componentName" (dict "ctx" . "component" "bench") }}
automountServiceAccountToken: false
# Argo's executor (its init and wait containers) reports to the Kubernetes API with its
# own account; the benchmark containers get no token.
executor:
  serviceAccountName: {{ required "lab.argo.executorServiceAccountName is required with lab.argo.enabled: an existing ServiceAccount that may create and patch workflowtaskresults" $lab.argo.executorServiceAccountName }}
activeDeadlineSeconds: {{ mul (int64 $lab.activeDeadlineSeconds) (len $lab.benchmarks) }}
podMetadata:
  labels:
    {{- include "hearth.labels" (dict "ctx" . "component" "bench") | nindent 4 }}
{{- with include "hearth.imagePullSecrets" . }}{{ . }}{{ end }}
securityContext:
  {{- include "hearth.podSecurityContext" (dict "uid" 10001) | nindent 2 }}
volumes:
  {{- include "hearth.lab.volumes" . | nindent 2 }}
templates:
  - name: benchmarks
    steps:
      {{- range $lab.benchmarks }}
      - - name: {{ .name }}
          template: bench-{{ .name }}
          # A benchmark that fails does not cancel the ones after it.
          continueOn:
            failed: true
      {{- end }}
  {{- range $lab.benchmarks }}
  {{- $bench := dict "ctx" $ "bench" . }}
  - name: bench-{{ .name }}
    metadata:
      labels:
        {{- include "hearth.lab.labels" $bench | nindent 8 }}
    # Like the Job's podFailurePolicy: a disrupted pod (Argo: Error) or a stop at a
    # checkpoint (exit 75) runs again and resumes the run; a failed run (1) or a wrong
    # command line (2) does not.
    retryStrategy:
      limit: {{ int64 $lab.argo.retryLimit }}
      retryPolicy: Always
      expression: 'lastRetry.status == "Error" || lastRetry.exitCode == "75"'
      backoff:
        duration: 30s
    podSpecPatch: {{ dict "terminationGracePeriodSeconds" (include "hearth.lab.terminationGrace" $ | int64) | toJson | quote }}
    {{- with include "hearth.lab.placement" $bench }}
    {{- . | nindent 4 }}
    {{- end }}
    initContainers:
      {{- include "hearth.lab.waitContainer" $bench | nindent 6 }}
    # The command is given: Argo's emissary executor would otherwise look the image's
    # entrypoint up in its registry.
    container:
      {{- include "hearth.lab.container" (merge (dict "command" true) $bench) | nindent 6 }}
  {{- end }}
{{- end }}
