{{- define "stevedore.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "stevedore.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains (include "stevedore.name" .) .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "stevedore.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "stevedore.namespace" -}}
{{- default .Release.Namespace .Values.namespaceOverride -}}
{{- end -}}

{{- define "stevedore.selectorLabels" -}}
app.kubernetes.io/name: {{ include "stevedore.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "stevedore.labels" -}}
{{ include "stevedore.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/component: metrics
app.kubernetes.io/part-of: stevedore
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end -}}

{{- define "stevedore.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "stevedore.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "stevedore.image" -}}
{{- $repo := .Values.image.repository -}}
{{- if .Values.image.registry -}}{{- $repo = printf "%s/%s" .Values.image.registry $repo -}}{{- end -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" $repo .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" $repo (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}
{{- end -}}

{{/* TLS on Stevedore's own port (web config with tls_server_config). */}}
{{- define "stevedore.tls" -}}
{{- if and .Values.webConfig.enabled .Values.webConfig.config.tls_server_config -}}true{{- end -}}
{{- end -}}

{{/* Client certificates required: the kubelet's probes cannot complete the handshake. */}}
{{- define "stevedore.clientCertsRequired" -}}
{{- if include "stevedore.tls" . -}}
{{- $t := default "" .Values.webConfig.config.tls_server_config.client_auth_type -}}
{{- if or (eq $t "RequireAndVerifyClientCert") (eq $t "RequireAnyClientCert") (eq $t "RequireClientCert") -}}true{{- end -}}
{{- end -}}
{{- end -}}

{{/* The job label of a scrape profile. */}}
{{- define "stevedore.jobLabel" -}}
{{- if .monitor.jobLabel -}}{{ .monitor.jobLabel }}
{{- else if eq .monitor.profile "kubelet-cadvisor" -}}kubelet
{{- else -}}{{ include "stevedore.name" .root }}
{{- end -}}
{{- end -}}

{{/* Relabelings and metric relabelings of a scrape profile (ServiceMonitor and PodMonitor alike). */}}
{{- define "stevedore.profileRelabelings" -}}
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: node
- sourceLabels: [__meta_kubernetes_pod_node_name]
  targetLabel: instance
{{- if eq .monitor.profile "kubelet-cadvisor" }}
- targetLabel: metrics_path
  replacement: /metrics/cadvisor
{{- end }}
{{- with .monitor.relabelings }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "stevedore.profileMetricRelabelings" -}}
{{- if eq .monitor.profile "kubelet-cadvisor" }}
# node_* series as kube-prometheus' node-exporter job has them.
- sourceLabels: [__name__]
  regex: node_.*
  targetLabel: job
  replacement: node-exporter
- sourceLabels: [__name__]
  regex: node_.*
  targetLabel: metrics_path
  replacement: ""
{{- end }}
{{- with .monitor.metricRelabelings }}
{{ toYaml . }}
{{- end }}
{{- end -}}
