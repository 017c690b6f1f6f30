{{/*
A probe from values, with the chart's check added when the value names none (no httpGet, tcpSocket, exec or grpc):
GET PATH on the metrics port when the component serves metrics (the listener answers /healthz and /readyz), else a
TCP connect to FALLBACK (the coordinator's gRPC port: it proves the process listens, not that it can work).
{} or null: no probe. Call with (dict "probe" $c.livenessProbe "path" "/healthz" "metrics" $c.metrics.enabled "fallback" "grpc").
*/}}
{{- define "fedge.probe" -}}
{{- $p := deepCopy (default (dict) .probe) }}
{{- if and $p (not (or (hasKey $p "httpGet") (hasKey $p "tcpSocket") (hasKey $p "exec") (hasKey $p "grpc"))) }}
{{- if .metrics }}
{{- $_ := set $p "httpGet" (dict "path" .path "port" "metrics") }}
{{- else }}
{{- $_ := set $p "tcpSocket" (dict "port" .fallback) }}
{{- end }}
{{- end }}
{{- if $p }}{{ toYaml $p }}{{ end }}
{{- end }}
