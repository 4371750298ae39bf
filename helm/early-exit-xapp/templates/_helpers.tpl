{{- define "xapp.name" -}}
{{- .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "xapp.fullname" -}}
{{- if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "xapp.selectorLabels" -}}
app.kubernetes.io/name: {{ include "xapp.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "xapp.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "xapp.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "xapp.redisSecret" -}}
{{- .Values.redis.existingSecret | default (printf "%s-redis" (include "xapp.fullname" .)) }}
{{- end }}

{{/* The descriptor the pods read: descriptors/default.yaml, then .Values.descriptor, then the
     values that must agree with the pod spec (ports, device). */}}
{{- define "xapp.descriptor" -}}
{{- $d := fromYaml (.Files.Get "files/descriptor.yaml") }}
{{- $d = mergeOverwrite $d (deepCopy .Values.descriptor) }}
{{- $_ := set $d.ops "http_port" (int .Values.ports.http) }}
{{- $_ = set $d.publish.zmq "endpoint" (printf "tcp://*:%d" (int .Values.ports.zmq)) }}
{{- $_ = set $d.ops "bind" "0.0.0.0" }}{{/* the kubelet probes the pod IP */}}
{{- with .Values.tls }}{{ if .secretName }}
{{- if .e2 }}{{ $_ = set $d.e2 "tls" (dict "ca" "/opt/ric/tls/ca.crt" "cert" "/opt/ric/tls/tls.crt" "key" "/opt/ric/tls/tls.key") }}{{ end }}
{{- if .redis }}{{ $_ = set $d.publish.redis "tls" (dict "ca" "/opt/ric/tls/ca.crt") }}{{ end }}
{{- if .zmqCurve }}{{ $_ = set $d.publish.zmq "curve" (dict "secret_key" "/opt/ric/tls/zmq-server.key_secret") }}{{ end }}
{{- end }}{{ end }}
{{- if .Values.gpu.enabled }}
{{- $_ = set $d.encoder "device" "cuda" }}
{{- end }}
{{- toYaml $d }}
{{- end }}
