{{/*
Names: <release>-<chart> unless the release name already contains the chart name, at most 63
characters (DNS labels). The coordinator's RPC Service is <fullname>-coordinator.
*/}}
{{- define "tributary.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "tributary.fullname" -}}
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

{{- define "tributary.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every object. */}}
{{- define "tributary.labels" -}}
helm.sh/chart: {{ include "tributary.chart" . }}
{{ include "tributary.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "tributary.selectorLabels" -}}
app.kubernetes.io/name: {{ include "tributary.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* Selector labels of one role's pods; called with (dict "root" $ "role" "coordinator"|"worker"). */}}
{{- define "tributary.roleSelectorLabels" -}}
{{ include "tributary.selectorLabels" .root }}
app.kubernetes.io/component: {{ .role }}
{{- end }}

{{- define "tributary.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "tributary.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "tributary.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The coordinator's node RPC address as the workers dial it. */}}
{{- define "tributary.coordinatorAddress" -}}
{{- printf "%s-coordinator:%v" (include "tributary.fullname" .) .Values.ports.rpc }}
{{- end }}

{{/* Whether the chart's Secret carries the users file. */}}
{{- define "tributary.usersInChart" -}}
{{- if and (ne .Values.auth.method "trust") (not .Values.auth.existingSecret) }}true{{ end }}
{{- end }}

{{/* Whether the spool gets S3 credentials from a Secret. */}}
{{- define "tributary.spoolCredentials" -}}
{{- with .Values.spool.credentials }}
{{- if or .existingSecret .accessKeyId .secretAccessKey }}true{{ end }}
{{- end }}
{{- end }}

{{/*
The shared secret: the value given, else the one the release's Secret already holds (so an
upgrade keeps it), else a new random one.
*/}}
{{- define "tributary.sharedSecretValue" -}}
{{- if .Values.sharedSecret.value }}
{{- .Values.sharedSecret.value }}
{{- else }}
{{- $existing := lookup "v1" "Secret" .Release.Namespace (include "tributary.fullname" .) }}
{{- if and $existing $existing.data (hasKey $existing.data "shared-secret") }}
{{- index $existing.data "shared-secret" | b64dec }}
{{- else }}
{{- randAlphaNum 40 }}
{{- end }}
{{- end }}
{{- end }}

{{/*
config.toml of one role, called with (dict "root" $ "role" "coordinator"|"worker"): `config`,
then `<role>.config` over it, then what the chart owns over both; rendered as TOML by
"tributary.toml".
*/}}
{{- define "tributary.configToml" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $config := mergeOverwrite (deepCopy ($values.config | default dict)) (deepCopy ((index $values .role).config | default dict)) }}
{{- $node := dict "role" .role "rpc_listen" (printf "${POD_IP}:%v" $values.ports.rpc) "shared_secret" "${TRIBUTARY_SHARED_SECRET}" "shutdown_timeout_ms" $values.shutdownTimeoutMs }}
{{- if eq .role "worker" }}
{{- $_ := set $node "id" "${POD_NAME}" }}
{{- $_ := set $node "coordinator" (include "tributary.coordinatorAddress" $root) }}
{{- $config = omit $config "server" "auth" "tls" }}
{{- else }}
{{- $_ := set $config "server" (dict "listen" (printf "0.0.0.0:%v" $values.ports.pgwire)) }}
{{- $auth := dict "method" $values.auth.method }}
{{- if ne $values.auth.method "trust" }}
{{- $_ := set $auth "users_file" "users.toml" }}
{{- end }}
{{- $_ := set $config "auth" $auth }}
{{- $tls := omit (index $config "tls" | default dict) "cert_file" "key_file" "required" }}
{{- if $values.tls.existingSecret }}
{{- $_ := set $tls "cert_file" "tls/tls.crt" }}
{{- $_ := set $tls "key_file" "tls/tls.key" }}
{{- $_ := set $tls "required" $values.tls.required }}
{{- end }}
{{- $_ := set $config "tls" $tls }}
{{- end }}
{{- $_ := set $config "node" (mergeOverwrite (omit (index $config "node" | default dict) "id" "coordinator") $node) }}
{{- if include "tributary.spoolCredentials" $root }}
{{- $exchange := index $config "exchange" | default dict }}
{{- $_ := set $exchange "access_key_id" "${TRIBUTARY_SPOOL_ACCESS_KEY_ID}" }}
{{- $_ := set $exchange "secret_access_key" "${TRIBUTARY_SPOOL_SECRET_ACCESS_KEY}" }}
{{- $_ := set $config "exchange" $exchange }}
{{- end }}
{{- include "tributary.toml" $config }}
{{- end }}

{{/*
A map of sections, each a map of keys, as TOML. toJson writes strings, numbers (never in
exponent form), booleans and lists of them in a syntax TOML shares; nested tables are refused.
*/}}
{{- define "tributary.toml" -}}
{{- $sections := list }}
{{- range $section, $keys := . }}
{{- if not (kindIs "map" $keys) }}
{{- fail (printf "config.%s: expected a map of keys (a config.toml section)" $section) }}
{{- end }}
{{- $lines := list }}
{{- range $key, $value := $keys }}
{{- if kindIs "map" $value }}
{{- fail (printf "config.%s.%s: nested tables are not supported" $section $key) }}
{{- end }}
{{- if not (kindIs "invalid" $value) }}
{{- $lines = append $lines (printf "%s = %s" $key (toJson $value)) }}
{{- end }}
{{- end }}
{{- if $lines }}
{{- $sections = append $sections (printf "[%s]\n%s" $section (join "\n" $lines)) }}
{{- end }}
{{- end }}
{{- join "\n\n" $sections }}
{{- end }}

{{/* Environment of the server container of every pod. */}}
{{- define "tributary.env" -}}
- name: POD_IP
  valueFrom:
    fieldRef:
      fieldPath: status.podIP
- name: POD_NAME
  valueFrom:
    fieldRef:
      fieldPath: metadata.name
- name: TRIBUTARY_SHARED_SECRET
  valueFrom:
    secretKeyRef:
      name: {{ default (include "tributary.fullname" .) .Values.sharedSecret.existingSecret }}
      key: {{ ternary .Values.sharedSecret.key "shared-secret" (ne .Values.sharedSecret.existingSecret "") }}
{{- if include "tributary.spoolCredentials" . }}
{{- $secret := default (include "tributary.fullname" .) .Values.spool.credentials.existingSecret }}
- name: TRIBUTARY_SPOOL_ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "access-key-id" "spool-access-key-id" (ne .Values.spool.credentials.existingSecret "") }}
- name: TRIBUTARY_SPOOL_SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ $secret }}
      key: {{ ternary "secret-access-key" "spool-secret-access-key" (ne .Values.spool.credentials.existingSecret "") }}
{{- end }}
{{- range $name, $_ := .Values.secretEnv }}
- name: {{ $name }}
  valueFrom:
    secretKeyRef:
      name: {{ include "tributary.fullname" $ }}
      key: {{ printf "env.%s" $name }}
{{- end }}
{{- with .Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
The pod template of one role, called with (dict "root" $ "role" "coordinator"|"worker").
/etc/tributary is one projected volume: config.toml of the role, the coordinator's users file and
TLS certificate from Secrets, and catalog/NAME.toml from the catalogs ConfigMap.
*/}}
{{- define "tributary.podTemplate" -}}
{{- $root := .root }}
{{- $values := $root.Values }}
{{- $role := .role }}
{{- $roleValues := index $values $role }}
{{- $fullname := include "tributary.fullname" $root }}
metadata:
  labels:
    {{- include "tributary.labels" $root | nindent 4 }}
    app.kubernetes.io/component: {{ $role }}
    {{- with $values.podLabels }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  annotations:
    # Pods restart when their config or secrets change.
    checksum/config: {{ include (print $root.Template.BasePath "/configmap.yaml") $root | sha256sum }}
    checksum/secret: {{ include (print $root.Template.BasePath "/secret.yaml") $root | sha256sum }}
    {{- with $values.podAnnotations }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
spec:
  serviceAccountName: {{ include "tributary.serviceAccountName" $root }}
  automountServiceAccountToken: false
  {{- with $values.imagePullSecrets }}
  imagePullSecrets:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  securityContext:
    {{- toYaml $values.podSecurityContext | nindent 4 }}
  # SIGTERM drains for at most shutdownTimeoutMs, after the preStop sleep; 15 s more to leave.
  terminationGracePeriodSeconds: {{ add $values.preStopSleepSeconds (div (add $values.shutdownTimeoutMs 999) 1000) 15 }}
  containers:
    - name: tributary
      image: {{ include "tributary.image" $root }}
      imagePullPolicy: {{ $values.image.pullPolicy }}
      ports:
        {{- if eq $role "coordinator" }}
        - name: pgwire
          containerPort: {{ $values.ports.pgwire }}
          protocol: TCP
        {{- end }}
        - name: rpc
          containerPort: {{ $values.ports.rpc }}
          protocol: TCP
      env:
        {{- include "tributary.env" $root | nindent 8 }}
      {{- with $values.extraEnvFrom }}
      envFrom:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      livenessProbe:
        {{- toYaml $roleValues.livenessProbe | nindent 8 }}
      readinessProbe:
        {{- toYaml $roleValues.readinessProbe | nindent 8 }}
      lifecycle:
        preStop:
          exec:
            command: ["sleep", "{{ $values.preStopSleepSeconds }}"]
      securityContext:
        {{- toYaml $values.securityContext | nindent 8 }}
      {{- with $roleValues.resources }}
      resources:
        {{- toYaml . | nindent 8 }}
      {{- end }}
      volumeMounts:
        - name: config
          mountPath: /etc/tributary
          readOnly: true
        - name: scratch
          mountPath: /tmp
        {{- with $values.extraVolumeMounts }}
        {{- toYaml . | nindent 8 }}
        {{- end }}
  volumes:
    - name: config
      projected:
        sources:
          - configMap:
              name: {{ $fullname }}-{{ $role }}
              items:
                - key: config.toml
                  path: config.toml
          {{- if and (eq $role "coordinator") (include "tributary.usersInChart" $root) }}
          - secret:
              name: {{ $fullname }}
              items:
                - key: users.toml
                  path: users.toml
          {{- else if and (eq $role "coordinator") (ne $values.auth.method "trust") }}
          - secret:
              name: {{ $values.auth.existingSecret }}
              items:
                - key: users.toml
                  path: users.toml
          {{- end }}
          {{- if and (eq $role "coordinator") $values.tls.existingSecret }}
          - secret:
              name: {{ $values.tls.existingSecret }}
              items:
                - key: tls.crt
                  path: tls/tls.crt
                - key: tls.key
                  path: tls/tls.key
          {{- end }}
          {{- with $values.catalogs }}
          - configMap:
              name: {{ $fullname }}-catalogs
              items:
                {{- range $name, $_ := . }}
                - key: {{ $name }}.toml
                  path: catalog/{{ $name }}.toml
                {{- end }}
          {{- end }}
    - name: scratch
      emptyDir: {{ toJson $values.scratch }}
    {{- with $values.extraVolumes }}
    {{- toYaml . | nindent 4 }}
    {{- end }}
  {{- with $roleValues.nodeSelector }}
  nodeSelector:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $roleValues.tolerations }}
  tolerations:
    {{- toYaml . | nindent 4 }}
  {{- end }}
  {{- with $roleValues.affinity }}
  affinity:
    {{- toYaml . | nindent 4 }}
  {{- end }}
{{- end }}

{{/* The users file ([auth] users_file) from auth.users. */}}
{{- define "tributary.usersToml" -}}
# [auth] method = {{ .Values.auth.method | quote }}
{{- range .Values.auth.users }}

[[user]]
name = {{ required "auth.users[].name is required" .name | toJson }}
{{- with .passwordHash }}
password_hash = {{ toJson . }}
{{- end }}
{{- with .password }}
password = {{ toJson . }}
{{- end }}
{{- end }}
{{ end }}
