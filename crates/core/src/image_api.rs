//! The image service's API as the other services call it, with the caller's token or the
//! service user's: the one place that knows its paths. Compute proxies Nova's image routes
//! and makes snapshot images through it; agents fetch and upload image data through it;
//! block storage will make volumes from images and images from volumes through it.

use hyper::Method;
use serde_json::Value;

use crate::client::{self, ClientError};

/// Glance's JSON-patch media type, for [`ImageApi::update`].
const PATCH_TYPE: &str = "application/openstack-images-v2.1-json-patch";

#[derive(Clone, Debug)]
pub struct ImageApi {
    /// The image endpoint, `http://host:9292` (the catalog's URL).
    base: String,
}

impl ImageApi {
    pub fn new(base: &str) -> ImageApi {
        ImageApi { base: base.trim_end_matches('/').to_string() }
    }

    /// `/v2/images/{id}`.
    pub fn image_url(&self, id: &str) -> String {
        format!("{}/v2/images/{}", self.base, crate::url::encode(id))
    }

    /// `/v2/images/{id}/file`: the data, downloaded with GET and uploaded with PUT
    /// ([`client::upload_file`]).
    pub fn file_url(&self, id: &str) -> String {
        format!("{}/file", self.image_url(id))
    }

    /// The link Nova's image documents carry (`{endpoint}/images/{id}`).
    pub fn bookmark(&self, id: &str) -> String {
        format!("{}/images/{}", self.base, crate::url::encode(id))
    }

    pub async fn show(&self, token: &str, id: &str) -> Result<Value, ClientError> {
        client::json(Method::GET, &self.image_url(id), &[("x-auth-token", token)], None).await
    }

    /// Every image `token` sees, following the `next` links.
    pub async fn list_all(&self, token: &str) -> Result<Vec<Value>, ClientError> {
        let mut out = Vec::new();
        let mut path = "/v2/images?limit=1000".to_string();
        loop {
            let url = format!("{}{path}", self.base);
            let page = client::json(Method::GET, &url, &[("x-auth-token", token)], None).await?;
            out.extend(page["images"].as_array().cloned().unwrap_or_default());
            match page["next"].as_str() {
                Some(next) => path = next.to_string(),
                None => return Ok(out),
            }
        }
    }

    /// Creates an image record (`POST /v2/images`); its document.
    pub async fn create(&self, token: &str, doc: Value) -> Result<Value, ClientError> {
        let url = format!("{}/v2/images", self.base);
        client::json(Method::POST, &url, &[("x-auth-token", token)], Some(doc)).await
    }

    /// Deletes an image; one already gone is not an error.
    pub async fn delete(&self, token: &str, id: &str) -> Result<(), ClientError> {
        match client::json(Method::DELETE, &self.image_url(id), &[("x-auth-token", token)], None).await {
            Ok(_) | Err(ClientError::Status { status: 404, .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// A call on one image as it is answered, status and body, for a caller that maps the
    /// image service's answers itself (Nova's image proxy): GET, DELETE, or PATCH with
    /// `patch` operations.
    pub async fn call(
        &self,
        token: &str,
        method: Method,
        id: &str,
        patch: Option<Vec<Value>>,
    ) -> Result<(u16, bytes::Bytes), ClientError> {
        let mut headers = vec![("x-auth-token", token)];
        let body = patch.map(|ops| {
            headers.push(("content-type", PATCH_TYPE));
            Value::Array(ops).to_string().into_bytes()
        });
        let resp = client::send(method, &self.image_url(id), &headers, body).await?;
        let status = resp.status().as_u16();
        let bytes = http_body_util::BodyExt::collect(resp.into_body()).await?.to_bytes();
        Ok((status, bytes))
    }
}
