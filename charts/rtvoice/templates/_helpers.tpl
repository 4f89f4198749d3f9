{{/* Name prefix of every object: the release name, with "-rtvoice" unless it already says rtvoice. */}}
{{- define "rtvoice.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else if contains "rtvoice" .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-rtvoice" .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/* Labels on every object; call with (dict "root" $ "component" "ingress"). */}}
{{- define "rtvoice.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | replace "+" "_" }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
app.kubernetes.io/part-of: rtvoice
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
{{ include "rtvoice.selectorLabels" . }}
{{- end -}}

{{/* Immutable pod selector of a component. */}}
{{- define "rtvoice.selectorLabels" -}}
app.kubernetes.io/name: rtvoice-{{ .component }}
app.kubernetes.io/instance: {{ .root.Release.Name }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{/* The one image every service runs (entrypoint: rtvoice <service>). */}}
{{- define "rtvoice.image" -}}
{{- $tag := .Values.image.tag | default .Chart.AppVersion | trimSuffix "@" -}}
{{- if contains "@" $tag -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- else if hasPrefix "sha256:" $tag -}}
{{- printf "%s@%s" .Values.image.repository $tag -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository $tag -}}
{{- end -}}
{{- end -}}

{{/* host:port of the recorder's gRPC Service, as bridges in any namespace reach it. */}}
{{- define "rtvoice.recorderAddress" -}}
{{- printf "%s-recorder.%s.svc.%s:%d" (include "rtvoice.fullname" .) .Release.Namespace (.Values.clusterDomain | trimAll ".") (int .Values.recorder.port) -}}
{{- end -}}

{{/* prometheus.io/* pod annotations of a component serving metrics on .Values.metrics.port. */}}
{{- define "rtvoice.scrapeAnnotations" -}}
prometheus.io/scrape: "true"
prometheus.io/port: {{ .Values.metrics.port | quote }}
prometheus.io/path: /metrics
{{- end -}}

{{/* The metrics container port. */}}
{{- define "rtvoice.metricsPort" -}}
- name: metrics
  containerPort: {{ .Values.metrics.port }}
  protocol: TCP
{{- end -}}

{{/* Service flags every component gets: metrics port and, with internalAuth, the token file. */}}
{{- define "rtvoice.commonArgs" -}}
- --metrics-port
- {{ .Values.metrics.port | quote }}
{{- if .Values.internalAuth.enabled }}
- --internal-token-file
- /etc/rtvoice/internal/token
{{- end }}
{{- end -}}

{{- define "rtvoice.internalTokenMount" -}}
{{- if .Values.internalAuth.enabled }}
- name: internal-token
  mountPath: /etc/rtvoice/internal
  readOnly: true
{{- end }}
{{- end -}}

{{/* The internal-token Secret mounted whole (no subPath) so a rotated token reaches the running pod. */}}
{{- define "rtvoice.internalTokenVolume" -}}
{{- if .Values.internalAuth.enabled }}
- name: internal-token
  secret:
    secretName: {{ .Values.internalAuth.secretName }}
    items:
      - key: token
        path: token
{{- end }}
{{- end -}}

{{/* NetworkPolicy rule admitting the monitoring namespace (any namespace when empty) to `metrics`. */}}
{{- define "rtvoice.metricsIngressRule" -}}
- ports:
    - protocol: TCP
      port: metrics
  {{- with .Values.networkPolicy.monitoringNamespace }}
  from:
    - namespaceSelector:
        matchLabels:
          kubernetes.io/metadata.name: {{ . }}
  {{- end }}
{{- end -}}

{{/* PodDisruptionBudget apiVersion: policy/v1 from Kubernetes 1.21, else policy/v1beta1. */}}
{{- define "rtvoice.pdbApiVersion" -}}
{{- if .Capabilities.APIVersions.Has "policy/v1" -}}policy/v1{{- else -}}policy/v1beta1{{- end -}}
{{- end -}}

{{/* Security context shared by every container: non-root, no privilege escalation, read-only root. */}}
{{- define "rtvoice.containerSecurity" -}}
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
{{- end -}}

{{- define "rtvoice.podSecurity" -}}
runAsNonRoot: true
runAsUser: 10001
runAsGroup: 10001
fsGroup: 10001
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/* The operator's rules on namespaced objects (ClusterRole, or one Role per watched namespace). */}}
{{- define "rtvoice.operatorNamespacedRules" -}}
- apiGroups: ["rtvoice.io"]
  resources: ["voiceagents"]
  verbs: ["get", "list", "watch"]
- apiGroups: ["rtvoice.io"]
  resources: ["voiceagents/status"]
  verbs: ["get", "patch"]
- apiGroups: ["apps"]
  resources: ["deployments"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: [""]
  resources: ["configmaps", "services"]
  verbs: ["get", "list", "watch", "create", "patch"]
- apiGroups: ["networking.k8s.io"]
  resources: ["networkpolicies"]
  verbs: ["get", "list", "watch", "create", "patch"]
# delete: an autoscaler goes when its agent drops spec.autoscaling (the HPA would keep scaling otherwise).
- apiGroups: ["autoscaling"]
  resources: ["horizontalpodautoscalers"]
  verbs: ["get", "create", "patch", "delete"]
{{- if eq .Values.operator.autoscaler "keda" }}
- apiGroups: ["keda.sh"]
  resources: ["scaledobjects"]
  verbs: ["get", "create", "patch", "delete"]
{{- end }}
- apiGroups: [""]
  resources: ["events"]
  verbs: ["create"]
{{- end -}}

{{/* nodeSelector / tolerations / affinity of a component's values. */}}
{{- define "rtvoice.scheduling" -}}
{{- with .nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "rtvoice.pullSecrets" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- end -}}
