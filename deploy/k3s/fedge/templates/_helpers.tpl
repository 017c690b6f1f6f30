{{/*
Chart name, truncated to 63 characters (DNS label limit).
*/}}
{{- define "fedge.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Fully qualified app name: RELEASE-CHART, or RELEASE when it already contains the chart name.
Truncated to 52 characters so that suffixes such as "-coordinator-headless" stay within 63.
*/}}
{{- define "fedge.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/*
Chart name and version, as used by the helm.sh/chart label.
*/}}
{{- define "fedge.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
Common labels.
*/}}
{{- define "fedge.labels" -}}
helm.sh/chart: {{ include "fedge.chart" . }}
{{ include "fedge.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fedge
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/*
Selector labels (immutable once deployed: keep them minimal).
*/}}
{{- define "fedge.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fedge.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/*
Per-component names, labels and selector labels. Call with (dict "ctx" $ "component" "coordinator").
*/}}
{{- define "fedge.componentName" -}}
{{- printf "%s-%s" (include "fedge.fullname" .ctx) .component }}
{{- end }}

{{- define "fedge.componentLabels" -}}
{{ include "fedge.labels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{- define "fedge.componentSelectorLabels" -}}
{{ include "fedge.selectorLabels" .ctx }}
app.kubernetes.io/component: {{ .component }}
{{- end }}

{{/*
ServiceAccount name.
*/}}
{{- define "fedge.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "fedge.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/*
Image reference: repository@digest, or repository:tag (tag defaults to the appVersion).
*/}}
{{- define "fedge.image" -}}
{{- if .Values.image.digest }}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest }}
{{- else }}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}
{{- end }}

{{/*
Name of the Secret holding the tokens.
*/}}
{{- define "fedge.secretName" -}}
{{- default (printf "%s-tokens" (include "fedge.fullname" .)) .Values.auth.existingSecret }}
{{- end }}

{{/*
Coordinator address for the agents.
*/}}
{{- define "fedge.coordinatorAddress" -}}
{{- $s := ternary "s" "" (and .Values.coordinator.enabled (ne .Values.coordinator.tls.existingSecret "")) }}
{{- if .Values.agent.coordinatorAddress }}
{{- .Values.agent.coordinatorAddress }}
{{- else if and (eq .Values.agent.transport "mqtt") .Values.mosquitto.enabled }}
{{- include "fedge.mosquittoAgentUrl" . }}
{{- else if eq .Values.agent.transport "mqtt" }}
{{- printf "mqtt%s://%s.%s.svc:%d" $s (include "fedge.componentName" (dict "ctx" . "component" "coordinator")) .Release.Namespace (int .Values.coordinator.mqtt.port) }}
{{- else }}
{{- printf "grpc%s://%s.%s.svc:%d" $s (include "fedge.componentName" (dict "ctx" . "component" "coordinator")) .Release.Namespace (int .Values.coordinator.port) }}
{{- end }}
{{- end }}

{{/*
Token environment variables, always from the Secret. Call with (dict "ctx" $ "admin" true).
*/}}
{{- define "fedge.tokenEnv" -}}
- name: FEDGE_JOIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "fedge.secretName" .ctx }}
      key: {{ .ctx.Values.auth.joinTokenKey }}
{{- if .admin }}
- name: FEDGE_ADMIN_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ include "fedge.secretName" .ctx }}
      key: {{ .ctx.Values.auth.adminTokenKey }}
{{- end }}
{{- end }}
