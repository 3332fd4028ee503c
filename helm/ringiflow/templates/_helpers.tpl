{{/*
Names, labels and the pieces every workload shares. Components: gateway, command-svc,
query-svc, projector-svc, migration.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "ringiflow.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
The release's full name: fullnameOverride, else the release name when it already contains the
chart name, else release-chart. Truncated so that "<fullname>-projector-svc" still fits the
63 characters of a DNS label.
*/}}
{{- define "ringiflow.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 49 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 49 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 49 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/* "<fullname>-<component>": the name of a component's resources. Call with (list $ "gateway"). */}}
{{- define "ringiflow.componentName" -}}
{{- $root := index . 0 -}}
{{- printf "%s-%s" (include "ringiflow.fullname" $root) (index . 1) | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "ringiflow.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Labels that select a release's pods; never change after install (selectors are immutable). */}}
{{- define "ringiflow.selectorLabels" -}}
app.kubernetes.io/name: {{ include "ringiflow.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{/* Standard labels of every resource. */}}
{{- define "ringiflow.labels" -}}
helm.sh/chart: {{ include "ringiflow.chart" . }}
{{ include "ringiflow.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | trunc 63 | trimSuffix "-" | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: ringiflow
{{- with .Values.commonLabels }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/* Selector labels of one component. Call with (list $ "gateway"). */}}
{{- define "ringiflow.componentSelectorLabels" -}}
{{ include "ringiflow.selectorLabels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* Labels of one component's resources. Call with (list $ "gateway"). */}}
{{- define "ringiflow.componentLabels" -}}
{{ include "ringiflow.labels" (index . 0) }}
app.kubernetes.io/component: {{ index . 1 }}
{{- end -}}

{{/* metadata.annotations of every resource, when commonAnnotations is set. */}}
{{- define "ringiflow.annotations" -}}
{{- with .Values.commonAnnotations }}
annotations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "ringiflow.image" -}}
{{- if .Values.image.digest -}}
{{- printf "%s@%s" .Values.image.repository .Values.image.digest -}}
{{- else -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}
{{- end -}}

{{- define "ringiflow.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "ringiflow.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{/* The chart's own Secret (JWT secret, database URLs, SASL password, whichever it holds). */}}
{{- define "ringiflow.secretName" -}}
{{- include "ringiflow.fullname" . -}}
{{- end -}}

{{- define "ringiflow.configName" -}}
{{- printf "%s-config" (include "ringiflow.fullname" .) -}}
{{- end -}}

{{/* gRPC URLs of the services inside the cluster. */}}
{{- define "ringiflow.commandUrl" -}}
{{- printf "http://%s:%v" (include "ringiflow.componentName" (list . "command-svc")) .Values.commandSvc.service.port -}}
{{- end -}}
{{- define "ringiflow.queryUrl" -}}
{{- printf "http://%s:%v" (include "ringiflow.componentName" (list . "query-svc")) .Values.querySvc.service.port -}}
{{- end -}}

{{/* Whether the chart's Secret holds database URLs (else they come from database.existingSecret). */}}
{{- define "ringiflow.database.urlsInChartSecret" -}}
{{- if not .Values.database.existingSecret -}}true{{- end -}}
{{- end -}}

{{/*
A composed database URL for the chart's Secret. Call with (list $ "ringiflow_events").
The password is query-escaped, which is safe in the user-info part for URL-safe passwords.
*/}}
{{- define "ringiflow.database.composedUrl" -}}
{{- $root := index . 0 -}}
{{- $db := $root.Values.database -}}
{{- $userinfo := $db.user -}}
{{- if $db.password -}}
{{- $userinfo = printf "%s:%s" $db.user ($db.password | urlquery) -}}
{{- end -}}
{{- printf "postgres://%s@%s:%v/%s?%s" $userinfo $db.host $db.port (index . 1) (include "ringiflow.database.params" $root) -}}
{{- end -}}

{{/* The query string of composed database URLs. */}}
{{- define "ringiflow.database.params" -}}
{{- printf "sslmode=%s" .Values.database.sslMode -}}
{{- with .Values.database.sslRootCert }}{{ printf "&sslrootcert=%s" . }}{{- end -}}
{{- end -}}

{{/*
Environment variables carrying the database URLs: from the chart's Secret, from URL keys of
database.existingSecret (host empty), or composed from the parts with the password of
database.existingSecret through Kubernetes' $(VAR) expansion. Call with
(dict "root" $ "eventStore" true "read" true "secretName" NAME) — secretName defaults to the
chart's Secret.
*/}}
{{- define "ringiflow.database.env" -}}
{{- $root := .root -}}
{{- $db := $root.Values.database -}}
{{- $secretName := .secretName | default (include "ringiflow.secretName" $root) -}}
{{- if not $db.existingSecret }}
{{- if .eventStore }}
- name: RINGIFLOW_EVENT_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: event-store-url
{{- end }}
{{- if .read }}
- name: RINGIFLOW_READ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $secretName }}
      key: read-database-url
{{- end }}
{{- else if not $db.host }}
{{- if .eventStore }}
- name: RINGIFLOW_EVENT_STORE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.existingSecretEventStoreUrlKey }}
{{- end }}
{{- if .read }}
- name: RINGIFLOW_READ_DATABASE_URL
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.existingSecretReadUrlKey }}
{{- end }}
{{- else }}
- name: RINGIFLOW_DATABASE_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ $db.existingSecret }}
      key: {{ $db.existingSecretPasswordKey }}
{{- if .eventStore }}
- name: RINGIFLOW_EVENT_STORE_URL
  value: {{ printf "postgres://%s:$(RINGIFLOW_DATABASE_PASSWORD)@%s:%v/%s?%s" $db.user $db.host $db.port $db.eventStoreName (include "ringiflow.database.params" $root) | quote }}
{{- end }}
{{- if .read }}
- name: RINGIFLOW_READ_DATABASE_URL
  value: {{ printf "postgres://%s:$(RINGIFLOW_DATABASE_PASSWORD)@%s:%v/%s?%s" $db.user $db.host $db.port $db.readName (include "ringiflow.database.params" $root) | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/*
Whether the services get an HS256 secret: one is given, or none is and no public key is either
(then the chart generates one).
*/}}
{{- define "ringiflow.jwt.hasSecret" -}}
{{- $jwt := .Values.auth.jwt -}}
{{- if or $jwt.secret $jwt.existingSecret (not $jwt.publicKey.existingSecret) -}}true{{- end -}}
{{- end -}}

{{/* The JWT secret variable every service reads (when there is one). */}}
{{- define "ringiflow.jwt.env" -}}
{{- if include "ringiflow.jwt.hasSecret" . }}
- name: RINGIFLOW_JWT_SECRET
  valueFrom:
    secretKeyRef:
      {{- if .Values.auth.jwt.existingSecret }}
      name: {{ .Values.auth.jwt.existingSecret }}
      key: {{ .Values.auth.jwt.existingSecretKey }}
      {{- else }}
      name: {{ include "ringiflow.secretName" . }}
      key: jwt-secret
      {{- end }}
{{- end }}
{{- end -}}

{{/* The Kafka SASL password, for the services that talk to Kafka, when SASL is configured. */}}
{{- define "ringiflow.kafka.env" -}}
{{- if .Values.kafka.sasl.mechanism }}
- name: RINGIFLOW_KAFKA_SASL_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if .Values.kafka.sasl.existingSecret }}
      name: {{ .Values.kafka.sasl.existingSecret }}
      key: {{ .Values.kafka.sasl.existingSecretPasswordKey }}
      {{- else }}
      name: {{ include "ringiflow.secretName" . }}
      key: kafka-sasl-password
      {{- end }}
{{- end }}
{{- end -}}

{{/* OTEL_* variables of one component. Call with (list $ "gateway"). */}}
{{- define "ringiflow.otel.env" -}}
{{- $root := index . 0 -}}
{{- if $root.Values.otel.enabled }}
- name: OTEL_SERVICE_NAME
  value: {{ index . 1 | quote }}
- name: OTEL_EXPORTER_OTLP_ENDPOINT
  value: {{ $root.Values.otel.endpoint | quote }}
- name: OTEL_EXPORTER_OTLP_PROTOCOL
  value: {{ $root.Values.otel.protocol | quote }}
{{- with $root.Values.otel.resourceAttributes }}
- name: OTEL_RESOURCE_ATTRIBUTES
  value: {{ . | quote }}
{{- end }}
{{- end }}
{{- end -}}

{{/* Mount paths of the optional key and CA files. */}}
{{- define "ringiflow.jwtPublicKeyDir" -}}/etc/ringiflow/jwt{{- end -}}
{{- define "ringiflow.kafkaCaDir" -}}/etc/ringiflow/kafka-ca{{- end -}}

{{/* Volumes every service pod has: a writable /tmp, and the optional key and CA files. */}}
{{- define "ringiflow.volumes" -}}
- name: tmp
  emptyDir:
    sizeLimit: 64Mi
{{- with .Values.auth.jwt.publicKey.existingSecret }}
- name: jwt-public-key
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- with .Values.kafka.tls.caSecret }}
- name: kafka-ca
  secret:
    secretName: {{ . }}
    defaultMode: 0444
{{- end }}
{{- with .Values.extraVolumes }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{- define "ringiflow.volumeMounts" -}}
- name: tmp
  mountPath: /tmp
{{- if .Values.auth.jwt.publicKey.existingSecret }}
- name: jwt-public-key
  mountPath: {{ include "ringiflow.jwtPublicKeyDir" . }}
  readOnly: true
{{- end }}
{{- if .Values.kafka.tls.caSecret }}
- name: kafka-ca
  mountPath: {{ include "ringiflow.kafkaCaDir" . }}
  readOnly: true
{{- end }}
{{- with .Values.extraVolumeMounts }}
{{ toYaml . }}
{{- end }}
{{- end -}}

{{/*
Pod-level scheduling of one component: nodeSelector, tolerations, affinity and topology spread
constraints (whose labelSelector defaults to the component's pods). Call with (list $ "gateway" .Values.gateway).
*/}}
{{- define "ringiflow.scheduling" -}}
{{- $root := index . 0 -}}
{{- $component := index . 1 -}}
{{- $values := index . 2 -}}
{{- with $values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $values.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- range . }}
  {{- $constraint := deepCopy . }}
  {{- if not $constraint.labelSelector }}
  {{- $_ := set $constraint "labelSelector" (dict "matchLabels" (include "ringiflow.componentSelectorLabels" (list $root $component) | fromYaml)) }}
  {{- end }}
  - {{- toYaml $constraint | nindent 4 }}
  {{- end }}
{{- end }}
{{- end -}}

{{/* Pod annotations that roll the pods when their configuration changes. */}}
{{- define "ringiflow.checksums" -}}
checksum/config: {{ include (print .Template.BasePath "/configmap.yaml") . | sha256sum }}
checksum/secret: {{ include (print .Template.BasePath "/secret.yaml") . | sha256sum }}
{{- end -}}

{{/*
The four services and what differs between them. `values` is the key of their section in
values.yaml; `addrEnv` the setting of their listen address; `eventStore`/`read` the database
URLs they get; `kafka` whether they talk to Kafka; `autoscale` whether an HPA may scale them
(not the projector: replicas beyond the topic's partitions would idle).
*/}}
{{- define "ringiflow.components" -}}
- name: gateway
  values: gateway
  portName: http
  addrEnv: RINGIFLOW_LISTEN_ADDR
  eventStore: false
  read: false
  kafka: false
  autoscale: true
- name: command-svc
  values: commandSvc
  portName: grpc
  addrEnv: RINGIFLOW_LISTEN_ADDR
  eventStore: true
  read: false
  kafka: true
  autoscale: true
- name: query-svc
  values: querySvc
  portName: grpc
  addrEnv: RINGIFLOW_LISTEN_ADDR
  # Workflow histories are read from the event store.
  eventStore: true
  read: true
  kafka: false
  autoscale: true
- name: projector-svc
  values: projectorSvc
  portName: grpc
  addrEnv: RINGIFLOW_HEALTH_ADDR
  # For the runbook commands (`projector-svc rebuild|verify`) run with kubectl exec.
  eventStore: true
  read: true
  kafka: true
  autoscale: false
{{- end -}}
