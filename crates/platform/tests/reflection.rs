//! Server reflection as gRPC tools use it: grpcurl asks `grpc.reflection.v1`, while grpcui,
//! Postman, Evans, older grpcurl and Python's grpcio-reflection ask `grpc.reflection.v1alpha`.
//! Each must list the services and describe them.

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// Every service the platform's gRPC server describes, whichever binary serves it.
const EXPECTED: &[&str] = &[
    "grpc.health.v1.Health",
    "grpc.reflection.v1.ServerReflection",
    "grpc.reflection.v1alpha.ServerReflection",
    "ringiflow.workflow.v1.WorkflowCommandService",
    "ringiflow.workflow.v1.DefinitionCommandService",
    "ringiflow.workflow.v1.WorkflowQueryService",
];

/// A platform gRPC server on a free port; stops when the returned token is cancelled.
async fn serve() -> (Channel, CancellationToken) {
    let settings = platform::settings::GrpcServerSettings {
        grpc_server_timeout_ms: 10_000,
    };
    let (router, reporter) = platform::grpc::router(
        &["ringiflow.test"],
        &[proto::FILE_DESCRIPTOR_SET],
        &settings,
    )
    .await
    .unwrap();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    tokio::spawn(platform::grpc::serve(
        router,
        reporter,
        &["ringiflow.test"],
        listener,
        shutdown.clone(),
    ));
    let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
        .unwrap()
        .connect()
        .await
        .unwrap();
    (channel, shutdown)
}

/// The same conversation in either reflection version (their generated types differ only in
/// their module): list the services, then ask for the file that defines one of ours.
macro_rules! reflection_test {
    ($name:ident, $pb:path) => {
        #[tokio::test]
        async fn $name() {
            use pb::server_reflection_client::ServerReflectionClient;
            use pb::server_reflection_request::MessageRequest;
            use pb::server_reflection_response::MessageResponse;
            use $pb as pb;

            let (channel, shutdown) = serve().await;
            let mut client = ServerReflectionClient::new(channel);
            let ask = |request: MessageRequest| pb::ServerReflectionRequest {
                host: String::new(),
                message_request: Some(request),
            };
            let requests = vec![
                ask(MessageRequest::ListServices(String::new())),
                ask(MessageRequest::FileContainingSymbol(
                    "ringiflow.workflow.v1.WorkflowCommandService".into(),
                )),
            ];
            let mut responses = client
                .server_reflection_info(tokio_stream::iter(requests))
                .await
                .expect("the reflection service answers")
                .into_inner();

            let listed = responses.message().await.unwrap().unwrap();
            let Some(MessageResponse::ListServicesResponse(listed)) = listed.message_response
            else {
                panic!("a list of services expected, got {listed:?}");
            };
            let names: Vec<&str> = listed.service.iter().map(|s| s.name.as_str()).collect();
            for expected in EXPECTED {
                assert!(
                    names.contains(expected),
                    "{expected} missing from {names:?}"
                );
            }

            let described = responses.message().await.unwrap().unwrap();
            let Some(MessageResponse::FileDescriptorResponse(files)) = described.message_response
            else {
                panic!("file descriptors expected, got {described:?}");
            };
            assert!(
                files.file_descriptor_proto.iter().any(|file| file
                    .windows(b"WorkflowCommandService".len())
                    .any(|window| window == b"WorkflowCommandService")),
                "no returned file defines WorkflowCommandService"
            );
            shutdown.cancel();
        }
    };
}

reflection_test!(
    v1_lists_and_describes_the_services,
    tonic_reflection::pb::v1
);
reflection_test!(
    v1alpha_lists_and_describes_the_services,
    tonic_reflection::pb::v1alpha
);
