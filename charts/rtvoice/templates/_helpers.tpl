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
{{- printf "%s-recorder.%s.svc.cluster.local:%d" (include "rtvoice.fullname" .) .Release.Namespace (int .Values.recorder.port) -}}
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
