{{/*
Names and labels shared by the templates. The server recognises its own Pods by app.kubernetes.io/name=mirrorhook
(lib/server/app.ts SELF_LABEL), so that label is fixed; the instance label tells releases apart in selectors.
*/}}

{{/* Base name of every object: fullnameOverride, else the release name when it contains the chart name, else
"<release>-<chart>"; at most 63 characters (a DNS label, as Service names must be). */}}
{{- define "mirrorhook.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if contains .Chart.Name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "mirrorhook.labels" -}}
app.kubernetes.io/name: mirrorhook
app.kubernetes.io/part-of: mirrorhook
app.kubernetes.io/instance: {{ .Release.Name | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service | quote }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{- define "mirrorhook.selectorLabels" -}}
app.kubernetes.io/name: mirrorhook
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "mirrorhook.rulesName" -}}
{{- .Values.rules.name | default (printf "%s-rules" (include "mirrorhook.fullname" .)) | trunc 253 -}}
{{- end -}}

{{- define "mirrorhook.tlsSecretName" -}}
{{- .Values.tls.secretName | default (printf "%s-tls" (include "mirrorhook.fullname" .)) -}}
{{- end -}}

{{- define "mirrorhook.servingCertName" -}}
{{- printf "%s-serving-cert" (include "mirrorhook.fullname" .) -}}
{{- end -}}

{{/* clientConfig.caBundle when cert-manager does not inject it. */}}
{{- define "mirrorhook.caBundle" -}}
{{- required "tls.caBundle (the base64-encoded PEM CA of the Secret tls.secretName) is required when certManager.enabled is false" .Values.tls.caBundle | quote -}}
{{- end -}}

{{/* cert-manager's CA injector fills the webhooks' caBundle from the serving Certificate. */}}
{{- define "mirrorhook.injectCaFrom" -}}
{{- printf "%s/%s" .Release.Namespace (include "mirrorhook.servingCertName" .) | quote -}}
{{- end -}}
