{{/*
The Secret holding the coordinator's Mosquitto password (mosquitto.auth).
*/}}
{{- define "fedge.mosquittoSecretName" -}}
{{- default (printf "%s-mosquitto" (include "fedge.fullname" .)) .Values.mosquitto.auth.existingSecret }}
{{- end }}

{{/*
The broker URL this release's agents use when mosquitto.enabled: the plaintext port inside the cluster (the
NetworkPolicy admits only this release's pods); the TLS listener (mosquitto.tls) is for agents outside it.
*/}}
{{- define "fedge.mosquittoAgentUrl" -}}
{{- printf "mqtt://%s.%s.svc:%d" (include "fedge.componentName" (dict "ctx" . "component" "mosquitto")) .Release.Namespace (int .Values.mosquitto.port) }}
{{- end }}
