//! The engine through the real `aws-sdk-rekognition` client, as the rest of facegate uses it:
//! a server spawned in-process on 127.0.0.1:0 by [`start_engine`], real models, real photos.
//!
//! Needs `scripts/setup.sh` (models in .facegate/models, ONNX Runtime in .venv). The S3 test
//! also needs the local stack at http://127.0.0.1:4566 (`scripts/stack.sh start`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use aws_sdk_rekognition::Client;
use aws_sdk_rekognition::error::ProvideErrorMetadata;
use aws_sdk_rekognition::primitives::Blob;
use aws_sdk_rekognition::types::{Attribute, Image, QualityFilter, S3Object};
use facegate_engine::face::{self, FaceModels, ModelSettings};
use facegate_engine::{EngineArgs, RunningEngine};
use facegate_shared::aws::AwsSettings;
use image::{GenericImage, ImageEncoder, RgbImage};

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the engine sits in the workspace")
        .to_path_buf()
}

fn photo(name: &str) -> Vec<u8> {
    let path = workspace_root().join("tests/fixtures/faces").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn bytes(data: Vec<u8>) -> Image {
    Image::builder().bytes(Blob::new(data)).build()
}

/// The models, loaded once for every server of this test binary.
fn models() -> Arc<FaceModels> {
    static MODELS: OnceLock<Arc<FaceModels>> = OnceLock::new();
    MODELS
        .get_or_init(|| {
            let root = workspace_root();
            let settings = model_settings(&root);
            Arc::new(FaceModels::load(&settings).expect("models load (run scripts/setup.sh first)"))
        })
        .clone()
}

fn model_settings(root: &Path) -> ModelSettings {
    ModelSettings {
        models_dir: root.join(".facegate/models"),
        ort_dylib_path: face::find_onnxruntime(root),
        workers: 2,
    }
}

/// A fresh, empty data folder for one test.
fn data_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("engine-api-{}", uuid::Uuid::new_v4()))
}

/// A running engine and a client pointed at it.
struct TestEngine {
    engine: RunningEngine,
    client: Client,
}

/// THE way tests start an engine: in-process, on a random loopback port, over `data_dir`.
async fn start_engine(data_dir: &Path) -> TestEngine {
    let models = tokio::task::spawn_blocking(models)
        .await
        .expect("loading the models");
    let args = EngineArgs::local(data_dir.to_owned(), model_settings(&workspace_root()));
    let engine = facegate_engine::spawn_with_models(args, models)
        .await
        .expect("engine starts");
    // One attempt: a retried error would hide what the engine answered first.
    let settings = AwsSettings {
        endpoint_url_rekognition: Some(engine.url()),
        max_attempts: 1,
        ..AwsSettings::local()
    };
    let client = settings.rekognition(&settings.sdk_config().await);
    TestEngine { engine, client }
}

/// The error code (`__type`) of a failed call.
fn code<T: std::fmt::Debug, E: ProvideErrorMetadata + std::fmt::Debug>(
    result: Result<T, E>,
) -> String {
    let error = result.expect_err("the call should fail");
    error
        .code()
        .unwrap_or_else(|| panic!("no error code in {error:?}"))
        .to_owned()
}

/// A blank grey PNG: an image with no face.
fn blank_png() -> Vec<u8> {
    let image = RgbImage::from_pixel(320, 240, image::Rgb([128, 128, 128]));
    let mut out = Vec::new();
    image::codecs::png::PngEncoder::new(&mut out)
        .write_image(image.as_raw(), 320, 240, image::ExtendedColorType::Rgb8)
        .unwrap();
    out
}

/// Two fixture faces pasted side by side into one JPEG.
fn two_faces_jpeg() -> Vec<u8> {
    let a = image::load_from_memory(&photo("obama_1.jpg")).unwrap();
    let b = image::load_from_memory(&photo("biden_1.jpg")).unwrap();
    let height = a.height().min(b.height()).min(600);
    let a = a.resize(10_000, height, image::imageops::FilterType::Triangle);
    let b = b.resize(10_000, height, image::imageops::FilterType::Triangle);
    let mut canvas = image::DynamicImage::new_rgb8(a.width() + b.width(), height);
    canvas.copy_from(&a, 0, 0).unwrap();
    canvas.copy_from(&b, a.width(), 0).unwrap();
    let mut out = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 90)
        .encode_image(&canvas.to_rgb8())
        .unwrap();
    out
}

/// The similarity CompareFaces reports between the largest faces of two photos.
async fn similarity(client: &Client, a: &str, b: &str) -> f32 {
    let answer = client
        .compare_faces()
        .source_image(bytes(photo(a)))
        .target_image(bytes(photo(b)))
        .similarity_threshold(0.0)
        .send()
        .await
        .unwrap_or_else(|e| panic!("CompareFaces {a} {b}: {e:?}"));
    answer.face_matches()[0].similarity().expect("a similarity")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compare_faces_matches_one_person_and_separates_different_people() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let names = [
        "alex_lacamoire_1.jpg",
        "biden_1.jpg",
        "biden_2.jpg",
        "kit_harington_1.jpg",
        "kit_harington_2.jpg",
        "lin_manuel_miranda_1.png",
        "obama_1.jpg",
        "obama_2.jpg",
        "obama_3.jpg",
        "rose_leslie_1.jpg",
        "rose_leslie_2.jpg",
    ];
    let person = |name: &str| name.rsplit_once('_').map(|(p, _)| p.to_owned()).unwrap();
    let (mut lowest_genuine, mut highest_impostor) = (f32::MAX, f32::MIN);
    for (i, a) in names.iter().enumerate() {
        for b in &names[i + 1..] {
            let s = similarity(&t.client, a, b).await;
            if person(a) != person(b) {
                assert!(s < 99.0, "{a} vs {b}: different people at {s}");
                highest_impostor = highest_impostor.max(s);
            } else {
                if person(a) == "obama" {
                    assert!(s > 99.0, "{a} vs {b}: the same person at only {s}");
                }
                lowest_genuine = lowest_genuine.min(s);
            }
        }
    }
    eprintln!(
        "CompareFaces: lowest genuine pair {lowest_genuine:.2}, highest impostor pair {highest_impostor:.2}"
    );

    // The default threshold (80) splits a genuine pair into FaceMatches and an impostor into
    // UnmatchedFaces; SourceImageFace describes the face used.
    let same = t
        .client
        .compare_faces()
        .source_image(bytes(photo("obama_1.jpg")))
        .target_image(bytes(photo("obama_3.jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(same.face_matches().len(), 1);
    assert!(same.unmatched_faces().is_empty());
    let source = same.source_image_face().unwrap();
    assert!(source.confidence().unwrap() > 50.0);
    assert!(source.bounding_box().unwrap().width().unwrap() > 0.0);
    let other = t
        .client
        .compare_faces()
        .source_image(bytes(photo("obama_1.jpg")))
        .target_image(bytes(photo("biden_1.jpg")))
        .send()
        .await
        .unwrap();
    assert!(other.face_matches().is_empty());
    assert_eq!(other.unmatched_faces().len(), 1);
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn indexed_faces_are_found_by_image_and_by_face_id() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let c = &t.client;
    let created = c
        .create_collection()
        .collection_id("people")
        .send()
        .await
        .unwrap();
    assert_eq!(created.status_code(), Some(200));
    assert!(
        created
            .collection_arn()
            .unwrap()
            .ends_with(":collection/people")
    );
    let mut obama_face = String::new();
    for name in [
        "obama_1.jpg",
        "obama_3.jpg",
        "biden_1.jpg",
        "kit_harington_1.jpg",
        "rose_leslie_1.jpg",
    ] {
        let external = name.trim_end_matches(".jpg");
        let indexed = c
            .index_faces()
            .collection_id("people")
            .image(bytes(photo(name)))
            .external_image_id(external)
            .detection_attributes(Attribute::Default)
            .send()
            .await
            .unwrap();
        assert_eq!(indexed.face_records().len(), 1, "{name}");
        let record = &indexed.face_records()[0];
        let face = record.face().unwrap();
        assert_eq!(face.external_image_id(), Some(external));
        uuid::Uuid::parse_str(face.face_id().unwrap()).expect("FaceId is a UUID");
        uuid::Uuid::parse_str(face.image_id().unwrap()).expect("ImageId is a UUID");
        let detail = record.face_detail().unwrap();
        assert_eq!(detail.landmarks().len(), 5);
        assert!(detail.pose().is_some() && detail.quality().is_some());
        if name == "obama_1.jpg" {
            obama_face = face.face_id().unwrap().to_owned();
        }
    }

    let found = c
        .search_faces_by_image()
        .collection_id("people")
        .image(bytes(photo("obama_2.jpg")))
        .send()
        .await
        .unwrap();
    let matches: Vec<_> = found
        .face_matches()
        .iter()
        .map(|m| m.face().unwrap().external_image_id().unwrap())
        .collect();
    assert_eq!(
        matches.len(),
        2,
        "both obama photos and nobody else: {matches:?}"
    );
    assert!(matches.iter().all(|m| m.starts_with("obama")));
    assert!(found.face_matches()[0].similarity().unwrap() > 99.0);
    assert!(found.searched_face_bounding_box().is_some());
    assert!(found.searched_face_confidence().unwrap() > 50.0);
    let one = c
        .search_faces_by_image()
        .collection_id("people")
        .image(bytes(photo("obama_2.jpg")))
        .max_faces(1)
        .send()
        .await
        .unwrap();
    assert_eq!(one.face_matches().len(), 1);

    let by_id = c
        .search_faces()
        .collection_id("people")
        .face_id(&obama_face)
        .send()
        .await
        .unwrap();
    assert_eq!(by_id.searched_face_id(), Some(obama_face.as_str()));
    let others: Vec<_> = by_id
        .face_matches()
        .iter()
        .map(|m| m.face().unwrap().external_image_id().unwrap())
        .collect();
    assert_eq!(others, ["obama_3"], "the searched face itself is left out");

    let missing = c
        .search_faces()
        .collection_id("people")
        .face_id(uuid::Uuid::new_v4().to_string())
        .send()
        .await;
    assert_eq!(code(missing), "InvalidParameterException");
    let nowhere = c
        .search_faces_by_image()
        .collection_id("nobody")
        .image(bytes(photo("obama_2.jpg")))
        .send()
        .await;
    assert_eq!(code(nowhere), "ResourceNotFoundException");
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_faces_pages_and_delete_faces_removes() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let c = &t.client;
    c.create_collection()
        .collection_id("pages")
        .send()
        .await
        .unwrap();
    let mut ids = Vec::new();
    for i in 0..5 {
        let indexed = c
            .index_faces()
            .collection_id("pages")
            .image(bytes(photo("biden_2.jpg")))
            .external_image_id(format!("upload-{i}"))
            .send()
            .await
            .unwrap();
        ids.push(
            indexed.face_records()[0]
                .face()
                .unwrap()
                .face_id()
                .unwrap()
                .to_owned(),
        );
    }
    ids.sort();

    let mut listed = Vec::new();
    let mut token = None;
    let mut pages = 0;
    loop {
        let page = c
            .list_faces()
            .collection_id("pages")
            .max_results(2)
            .set_next_token(token.clone())
            .send()
            .await
            .unwrap();
        pages += 1;
        assert!(page.faces().len() <= 2);
        listed.extend(page.faces().iter().map(|f| f.face_id().unwrap().to_owned()));
        token = page.next_token().map(str::to_owned);
        if token.is_none() || pages > 10 {
            break;
        }
    }
    assert_eq!(pages, 3);
    assert_eq!(listed, ids, "every face once, in order");
    let bad = c
        .list_faces()
        .collection_id("pages")
        .next_token("not-a-token")
        .send()
        .await;
    assert_eq!(code(bad), "InvalidPaginationTokenException");

    let unknown = uuid::Uuid::new_v4().to_string();
    let deleted = c
        .delete_faces()
        .collection_id("pages")
        .face_ids(&ids[0])
        .face_ids(&ids[3])
        .face_ids(&unknown)
        .send()
        .await
        .unwrap();
    let mut gone = deleted.deleted_faces().to_vec();
    gone.sort();
    assert_eq!(gone, [ids[0].clone(), ids[3].clone()]);
    assert_eq!(
        deleted.unsuccessful_face_deletions()[0].face_id(),
        Some(unknown.as_str())
    );
    let described = c
        .describe_collection()
        .collection_id("pages")
        .send()
        .await
        .unwrap();
    assert_eq!(described.face_count(), Some(3));
    let left = c.list_faces().collection_id("pages").send().await.unwrap();
    assert_eq!(left.faces().len(), 3);
    assert!(
        left.faces()
            .iter()
            .all(|f| f.face_id() != Some(ids[0].as_str()))
    );
    let bad_id = c
        .delete_faces()
        .collection_id("pages")
        .face_ids("not-a-uuid")
        .send()
        .await;
    assert_eq!(code(bad_id), "InvalidParameterException");
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn collections_are_created_described_listed_and_deleted() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let c = &t.client;
    c.create_collection()
        .collection_id("b-collection")
        .send()
        .await
        .unwrap();
    c.create_collection()
        .collection_id("a.collection_1")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.create_collection()
                .collection_id("a.collection_1")
                .send()
                .await
        ),
        "ResourceAlreadyExistsException"
    );
    assert_eq!(
        code(
            c.create_collection()
                .collection_id("no/slashes")
                .send()
                .await
        ),
        "InvalidParameterException"
    );
    assert_eq!(
        code(c.create_collection().collection_id("..").send().await),
        "InvalidParameterException"
    );

    let described = c
        .describe_collection()
        .collection_id("b-collection")
        .send()
        .await
        .unwrap();
    assert_eq!(described.face_count(), Some(0));
    assert!(
        described
            .collection_arn()
            .unwrap()
            .ends_with(":collection/b-collection")
    );
    let age = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
        - described.creation_timestamp().unwrap().as_secs_f64();
    assert!(
        (0.0..60.0).contains(&age),
        "created just now, not {age} s ago"
    );
    assert!(described.face_model_version().is_some());

    let first = c.list_collections().max_results(1).send().await.unwrap();
    assert_eq!(first.collection_ids(), ["a.collection_1"]);
    assert_eq!(first.face_model_versions().len(), 1);
    let rest = c
        .list_collections()
        .next_token(first.next_token().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(rest.collection_ids(), ["b-collection"]);
    assert!(rest.next_token().is_none());

    c.delete_collection()
        .collection_id("b-collection")
        .send()
        .await
        .unwrap();
    assert_eq!(
        code(
            c.describe_collection()
                .collection_id("b-collection")
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    assert_eq!(
        code(
            c.delete_collection()
                .collection_id("b-collection")
                .send()
                .await
        ),
        "ResourceNotFoundException"
    );
    let index_missing = c
        .index_faces()
        .collection_id("b-collection")
        .image(bytes(photo("obama_1.jpg")))
        .send()
        .await;
    assert_eq!(code(index_missing), "ResourceNotFoundException");
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_images_get_rekognition_errors() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let c = &t.client;
    c.create_collection()
        .collection_id("bad")
        .send()
        .await
        .unwrap();

    // No face: not an error for DetectFaces or IndexFaces, an error where a face is needed.
    let detected = c
        .detect_faces()
        .image(bytes(blank_png()))
        .send()
        .await
        .unwrap();
    assert!(detected.face_details().is_empty());
    let indexed = c
        .index_faces()
        .collection_id("bad")
        .image(bytes(blank_png()))
        .send()
        .await
        .unwrap();
    assert!(indexed.face_records().is_empty());
    let no_source = c
        .compare_faces()
        .source_image(bytes(blank_png()))
        .target_image(bytes(photo("obama_1.jpg")))
        .send()
        .await;
    assert_eq!(code(no_source), "InvalidParameterException");
    let no_face = c
        .search_faces_by_image()
        .collection_id("bad")
        .image(bytes(blank_png()))
        .send()
        .await;
    assert_eq!(code(no_face), "InvalidParameterException");

    // Two faces: both detected; MaxFaces leaves the smaller one out with Rekognition's reason.
    let two = two_faces_jpeg();
    let detected = c
        .detect_faces()
        .image(bytes(two.clone()))
        .attributes(Attribute::All)
        .send()
        .await
        .unwrap();
    assert_eq!(detected.face_details().len(), 2);
    let indexed = c
        .index_faces()
        .collection_id("bad")
        .image(bytes(two.clone()))
        .max_faces(1)
        .quality_filter(QualityFilter::None)
        .send()
        .await
        .unwrap();
    assert_eq!(indexed.face_records().len(), 1);
    assert_eq!(indexed.unindexed_faces().len(), 1);
    assert_eq!(
        indexed.unindexed_faces()[0].reasons()[0].as_str(),
        "EXCEEDS_MAX_FACES"
    );
    let compared = c
        .compare_faces()
        .source_image(bytes(photo("obama_2.jpg")))
        .target_image(bytes(two))
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            compared.face_matches().len(),
            compared.unmatched_faces().len()
        ),
        (1, 1)
    );

    // Not an image, a cut-off JPEG, and an image over Rekognition's 5 MB.
    let garbage = c
        .detect_faces()
        .image(bytes(b"certainly not a picture".repeat(100)))
        .send()
        .await;
    assert_eq!(code(garbage), "InvalidImageFormatException");
    let jpeg = photo("obama_1.jpg");
    let truncated = c
        .detect_faces()
        .image(bytes(jpeg[..jpeg.len() / 2].to_vec()))
        .send()
        .await;
    assert_eq!(code(truncated), "InvalidImageFormatException");
    let mut oversized = jpeg.clone();
    oversized.resize(5 * 1024 * 1024 + 1, 0);
    let too_large = c.detect_faces().image(bytes(oversized)).send().await;
    assert_eq!(code(too_large), "ImageTooLargeException");
    let bad_filter = c
        .index_faces()
        .collection_id("bad")
        .image(bytes(photo("obama_1.jpg")))
        .quality_filter("SHINY".into())
        .send()
        .await;
    assert_eq!(code(bad_filter), "InvalidParameterException");
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

/// A raw HTTP/1.1 request, for what the SDK cannot send (malformed bodies, odd headers).
async fn raw_request(addr: std::net::SocketAddr, request: String) -> (u16, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    let status = response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

/// A raw request signed like facegate's local clients sign (`test` / `test`).
fn post(target: &str, body: &str) -> String {
    signed_post(target, body, "test", "test")
}

/// A raw request signed with the given key pair (AWS Signature V4, by the SDK's own signer).
fn signed_post(target: &str, body: &str, key: &str, secret: &str) -> String {
    use aws_sigv4::http_request::{SignableBody, SignableRequest, SigningSettings, sign};
    let identity: aws_smithy_runtime_api::client::identity::Identity =
        aws_credential_types::Credentials::new(key, secret, None, None, "test").into();
    let params = aws_sigv4::sign::v4::SigningParams::builder()
        .identity(&identity)
        .region("us-east-1")
        .name("rekognition")
        .time(std::time::SystemTime::now())
        .settings(SigningSettings::default())
        .build()
        .unwrap()
        .into();
    let headers = [
        ("host", "localhost"),
        ("content-type", "application/x-amz-json-1.1"),
        ("x-amz-target", target),
    ];
    let request = SignableRequest::new(
        "POST",
        "http://localhost/",
        headers.iter().copied(),
        SignableBody::Bytes(body.as_bytes()),
    )
    .unwrap();
    let (instructions, _) = sign(request, &params).unwrap().into_parts();
    let signature: String = instructions
        .headers()
        .map(|(name, value)| format!("{name}: {value}\r\n"))
        .collect();
    format!("{}{signature}\r\n{body}", unsigned_head(target, body))
}

/// The request line and headers of an unsigned request, without the blank line.
fn unsigned_head(target: &str, body: &str) -> String {
    format!(
        "POST / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: application/x-amz-json-1.1\r\n\
         X-Amz-Target: {target}\r\nContent-Length: {}\r\n",
        body.len()
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unsigned_and_wrongly_signed_requests_are_refused() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    let addr = t.engine.addr();
    let list = "RekognitionService.ListCollections";
    let (status, body) = raw_request(addr, post(list, "{}")).await;
    assert_eq!(status, 200, "{body}");

    let error = |body: &str| -> (String, String) {
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        (
            json["__type"].as_str().unwrap_or_default().to_owned(),
            json["message"].as_str().unwrap_or_default().to_owned(),
        )
    };
    let unsigned = format!("{}\r\n{{}}", unsigned_head(list, "{}"));
    let (status, body) = raw_request(addr, unsigned).await;
    assert_eq!(status, 400);
    assert_eq!(
        error(&body).0,
        "MissingAuthenticationTokenException",
        "{body}"
    );
    let (status, body) = raw_request(addr, signed_post(list, "{}", "test", "wrong")).await;
    assert_eq!(status, 400);
    assert_eq!(error(&body).0, "InvalidSignatureException", "{body}");
    let (status, body) = raw_request(addr, signed_post(list, "{}", "intruder", "test")).await;
    assert_eq!(status, 400);
    assert_eq!(error(&body).0, "UnrecognizedClientException", "{body}");
    // A signature over one body does not cover another.
    let swapped =
        post(list, r#"{"MaxResults":1}"#).replace(r#"{"MaxResults":1}"#, r#"{"MaxResults":2}"#);
    let (status, body) = raw_request(addr, swapped).await;
    assert_eq!(status, 400);
    assert_eq!(error(&body).0, "InvalidSignatureException", "{body}");

    // Through the SDK with someone else's credentials.
    let settings = AwsSettings {
        endpoint_url_rekognition: Some(t.engine.url()),
        max_attempts: 1,
        ..AwsSettings::local()
    };
    let sdk = settings
        .sdk_config()
        .await
        .into_builder()
        .credentials_provider(
            aws_credential_types::provider::SharedCredentialsProvider::new(
                aws_credential_types::Credentials::new(
                    "test",
                    "not-the-secret",
                    None,
                    None,
                    "test",
                ),
            ),
        )
        .build();
    let foreign = settings.rekognition(&sdk);
    let refused = foreign.list_collections().send().await;
    assert_eq!(code(refused), "InvalidSignatureException");
    // The engine's own clients (test / test) still get in.
    t.client.list_collections().send().await.unwrap();
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_operations_and_malformed_requests_are_refused_clearly() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    // Through the SDK: an operation the engine does not implement.
    let labels = t
        .client
        .detect_labels()
        .image(bytes(photo("obama_1.jpg")))
        .send()
        .await;
    let error = labels.expect_err("DetectLabels is not supported");
    assert_eq!(error.code(), Some("UnknownOperationException"));
    assert!(
        error.message().unwrap().contains("DetectLabels"),
        "{error:?}"
    );

    let addr = t.engine.addr();
    let (status, body) = raw_request(
        addr,
        post("RekognitionService.CreateCollection", "{not json"),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");
    let (status, body) = raw_request(
        addr,
        post(
            "RekognitionService.DetectFaces",
            r#"{"Image": {"Bytes": 5}}"#,
        ),
    )
    .await;
    assert_eq!(status, 400);
    assert!(body.contains("SerializationException"), "{body}");
    let (status, body) = raw_request(addr, post("RekognitionService.DetectFaces", "{}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("InvalidParameterException"), "{body}");
    let (status, body) = raw_request(addr, post("Nothing.Here", "{}")).await;
    assert_eq!(status, 400);
    assert!(body.contains("UnknownOperationException"), "{body}");
    let (status, body) = raw_request(
        addr,
        "GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n".into(),
    )
    .await;
    assert_eq!((status, body.as_str()), (200, "ok"));
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_collection_survives_a_restart() {
    let dir = data_dir();
    let t = start_engine(&dir).await;
    t.client
        .create_collection()
        .collection_id("durable")
        .send()
        .await
        .unwrap();
    let indexed = t
        .client
        .index_faces()
        .collection_id("durable")
        .image(bytes(photo("rose_leslie_1.jpg")))
        .external_image_id("rose")
        .send()
        .await
        .unwrap();
    let face_id = indexed.face_records()[0]
        .face()
        .unwrap()
        .face_id()
        .unwrap()
        .to_owned();
    t.engine.shutdown().await.unwrap();

    let t = start_engine(&dir).await;
    let described = t
        .client
        .describe_collection()
        .collection_id("durable")
        .send()
        .await
        .unwrap();
    assert_eq!(described.face_count(), Some(1));
    let found = t
        .client
        .search_faces_by_image()
        .collection_id("durable")
        .image(bytes(photo("rose_leslie_2.jpg")))
        .send()
        .await
        .unwrap();
    assert_eq!(found.face_matches().len(), 1);
    assert_eq!(
        found.face_matches()[0].face().unwrap().face_id(),
        Some(face_id.as_str())
    );
    assert_eq!(
        found.face_matches()[0].face().unwrap().external_image_id(),
        Some("rose")
    );
    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_are_read_from_s3() {
    let s3_settings = AwsSettings::local();
    let s3 = s3_settings.s3(&s3_settings.sdk_config().await);
    let bucket = format!("engine-test-{}", uuid::Uuid::new_v4().simple());
    s3.create_bucket()
        .bucket(&bucket)
        .send()
        .await
        .expect("the local stack answers at http://127.0.0.1:4566 (scripts/stack.sh start)");
    s3.put_object()
        .bucket(&bucket)
        .key("faces/obama.jpg")
        .body(photo("obama_1.jpg").into())
        .send()
        .await
        .unwrap();

    let dir = data_dir();
    let t = start_engine(&dir).await;
    let object = |key: &str| {
        Image::builder()
            .s3_object(S3Object::builder().bucket(&bucket).name(key).build())
            .build()
    };
    let compared = t
        .client
        .compare_faces()
        .source_image(object("faces/obama.jpg"))
        .target_image(bytes(photo("obama_2.jpg")))
        .send()
        .await
        .unwrap();
    assert!(compared.face_matches()[0].similarity().unwrap() > 99.0);
    t.client
        .create_collection()
        .collection_id("from-s3")
        .send()
        .await
        .unwrap();
    let indexed = t
        .client
        .index_faces()
        .collection_id("from-s3")
        .image(object("faces/obama.jpg"))
        .send()
        .await
        .unwrap();
    assert_eq!(indexed.face_records().len(), 1);
    let missing = t
        .client
        .detect_faces()
        .image(object("faces/nobody.jpg"))
        .send()
        .await;
    let error = missing.expect_err("a missing object is refused");
    assert_eq!(error.code(), Some("InvalidS3ObjectException"));
    // Rekognition's one sentence, not the object store's answer.
    let message = error.message().expect("a message");
    assert_eq!(
        message,
        "Unable to get object metadata from S3. Check object key, region and/or access permissions."
    );
    assert!(
        !message.contains(&bucket) && !message.contains('\n'),
        "{message}"
    );

    t.engine.shutdown().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let _ = s3
        .delete_object()
        .bucket(&bucket)
        .key("faces/obama.jpg")
        .send()
        .await;
    let _ = s3.delete_bucket().bucket(&bucket).send().await;
}

/// `PUT path` with a binary body, raw.
async fn raw_put(addr: std::net::SocketAddr, path: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "PUT {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(body).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    response
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

/// A frame of the head-turn clip showing `step` (right: a left turn, mirrored); `take` 1 is
/// another one, for a step asked twice.
fn clip_frame(step: &str, take: usize) -> Vec<u8> {
    let clip = workspace_root().join("tests/fixtures/faces/clip");
    let read = |n: u32| std::fs::read(clip.join(format!("frame_{n:04}.jpg"))).unwrap();
    let left = [123, 126][take];
    match step {
        "centre" => read([90, 153][take]),
        "left" => read(left),
        _ => {
            let turned = image::load_from_memory(&read(left)).unwrap().to_rgb8();
            let mut out = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut out, 92)
                .encode_image(&image::imageops::flip_horizontal(&turned))
                .unwrap();
            out
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn face_liveness_sessions_take_each_frame_once_and_decide_once() {
    use aws_sdk_rekognition::types::LivenessSessionStatus;
    let dir = data_dir();
    let test = start_engine(&dir).await;
    let (client, addr) = (&test.client, test.engine.addr());
    let create = |token: String| async move {
        client
            .create_face_liveness_session()
            .client_request_token(token)
            .send()
            .await
            .expect("CreateFaceLivenessSession")
            .session_id()
            .to_string()
    };
    let results = |id: String| async move {
        client
            .get_face_liveness_session_results()
            .session_id(id)
            .send()
            .await
            .expect("GetFaceLivenessSessionResults")
    };
    let id = create("challenge-1".to_string()).await;
    assert_eq!(
        create("challenge-1".to_string()).await,
        id,
        "a retried create"
    );
    assert_eq!(
        results(id.clone()).await.status(),
        &LivenessSessionStatus::Created
    );

    // The steps a session asks, as the client reads them.
    let steps_of = |id: String| async move {
        let get = format!(
            "GET /liveness/sessions/{id} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        );
        let (status, body) = raw_request(addr, get).await;
        assert_eq!(status, 200, "{body}");
        let steps: serde_json::Value = serde_json::from_str(&body).unwrap();
        steps["Steps"]
            .as_str()
            .unwrap()
            .split(',')
            .map(str::to_string)
            .collect::<Vec<String>>()
    };
    // The client reads the steps and puts a frame per step.
    let feed = |id: String| async move {
        let steps = steps_of(id.clone()).await;
        let mut frames = Vec::new();
        for (n, step) in steps.iter().enumerate() {
            // A step asked twice gets another frame of the clip (a live head moved).
            let take = frames
                .iter()
                .filter(|(s, _): &&(String, Vec<u8>)| s == step)
                .count();
            let frame = clip_frame(step, take.min(1));
            let path = format!("/liveness/sessions/{id}/frames/{}", n + 1);
            assert_eq!(raw_put(addr, &path, &frame).await, 204, "{path}");
            frames.push((step.clone(), frame));
        }
        frames
    };
    let frames = feed(id.clone()).await;
    let first = format!("/liveness/sessions/{id}/frames/1");
    assert_eq!(
        raw_put(addr, &first, &frames[0].1).await,
        409,
        "a frame twice"
    );
    assert_eq!(
        raw_put(addr, &format!("/liveness/sessions/{id}/frames/4"), b"x").await,
        404
    );

    let live = results(id.clone()).await;
    assert_eq!(live.status(), &LivenessSessionStatus::Succeeded);
    assert!(live.confidence().unwrap_or(0.0) >= 90.0);
    let reference = live
        .reference_image()
        .and_then(|r| r.bytes())
        .expect("a reference");
    assert!(
        frames
            .iter()
            .any(|(step, f)| step == "centre" && f.as_slice() == reference.as_ref()),
        "the reference is the frontal frame"
    );
    assert_eq!(
        results(id.clone()).await.status(),
        &LivenessSessionStatus::Succeeded,
        "the decision stands"
    );
    assert_eq!(raw_put(addr, &first, &frames[0].1).await, 409, "decided");

    // The same frames fed to another session are a replay. Steps are drawn at random: take the
    // first new session whose every step the first one asked too, so each has a frame to replay.
    let mut other_steps = None;
    for attempt in 2..50 {
        let other = create(format!("challenge-{attempt}")).await;
        let steps = steps_of(other.clone()).await;
        if steps
            .iter()
            .all(|step| frames.iter().any(|(s, _)| s == step))
        {
            other_steps = Some((other, steps));
            break;
        }
    }
    let (other, steps) = other_steps.expect("a session whose steps the first one asked");
    for (n, step) in steps.iter().enumerate() {
        let frame = &frames.iter().find(|(s, _)| s == step).unwrap().1;
        let path = format!("/liveness/sessions/{other}/frames/{}", n + 1);
        assert_eq!(raw_put(addr, &path, frame).await, 204);
    }
    let replayed = results(other).await;
    assert_eq!(replayed.status(), &LivenessSessionStatus::Failed);
    assert_eq!(replayed.confidence(), Some(0.0));
    assert!(replayed.reference_image().is_none());

    let unknown = client
        .get_face_liveness_session_results()
        .session_id(uuid::Uuid::new_v4().to_string())
        .send()
        .await;
    assert_eq!(code(unknown), "SessionNotFoundException");
    let malformed = client
        .get_face_liveness_session_results()
        .session_id("not-a-session")
        .send()
        .await;
    assert_eq!(code(malformed), "InvalidParameterException");
    let _ = std::fs::remove_dir_all(dir);
}
