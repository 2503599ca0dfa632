{{/* Names and labels shared by every template. */}}

{{- define "kubemirror.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "kubemirror.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "kubemirror.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "kubemirror.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "kubemirror.selectorLabels" -}}
app.kubernetes.io/name: {{ include "kubemirror.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: controller
{{- end -}}

{{- define "kubemirror.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{ include "kubemirror.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end -}}

{{- define "kubemirror.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) -}}
{{- end -}}

{{/* The port of a bind address such as ":8080" or "0.0.0.0:8080". */}}
{{- define "kubemirror.port" -}}
{{- last (splitList ":" .) -}}
{{- end -}}

{{/* The types the controller is told to mirror: the explicit list, or Secrets and ConfigMaps when
     least-privilege RBAC is asked for without a list (auto-discovery would find every other type
     forbidden). Empty = auto-discovery. */}}
{{- define "kubemirror.resourceTypes" -}}
{{- if .Values.controller.resourceTypes -}}
{{- join "," .Values.controller.resourceTypes -}}
{{- else if eq .Values.rbac.mode "least" -}}
Secret.v1,ConfigMap.v1
{{- end -}}
{{- end -}}

{{/* Flags shared by the controller and the cleanup Job: what to mirror and where the Lease lives. */}}
{{- define "kubemirror.typeArgs" -}}
{{- with (include "kubemirror.resourceTypes" .) }}
- --resource-types={{ . }}
{{- end }}
{{- with .Values.controller.denyResourceTypes }}
- --deny-resource-types={{ join "," . }}
{{- end }}
- --leader-election-id={{ .Values.controller.leaderElectionID }}
- --leader-election-namespace={{ .Release.Namespace }}
{{- end -}}

{{/* The ClusterRole rules for the mirrored types: what sources and mirrors need. */}}
{{- define "kubemirror.typeRules" -}}
{{- if eq .Values.rbac.mode "autodiscovery" }}
# Auto-discovery: every namespaced type may be mirrored, so read (watch sources and mirrors), write
# (create/update/delete mirrors) and patch (finalizer and sync-status on sources) on everything.
- apiGroups: ["*"]
  resources: ["*"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- else }}
# Sources and mirrors: list/watch (caches), get (re-check a vanished source, verify an edited
# mirror), create/update/delete (mirrors), patch (finalizer and sync-status on sources).
- apiGroups: [""]
  resources: ["secrets", "configmaps"]
  verbs: ["get", "list", "watch", "create", "update", "patch", "delete"]
{{- with .Values.rbac.extraRules }}
{{ toYaml . }}
{{- end }}
{{- end }}
# Targeting: the namespace watch (metadata only).
- apiGroups: [""]
  resources: ["namespaces"]
  verbs: ["list", "watch"]
{{- end -}}
