//! HLS playlist rewriting (docs/hls.md §6). Placeholder; being written.
use crate::capability::Serve;
pub trait TagSigner {
    fn tag(&self, path: &str, serve: &Serve) -> String;
}
pub struct OriginBase<'a> {
    pub scheme: &'a str,
    pub authority: &'a str,
    pub base_path: &'a str,
}
pub struct Encrypt<'a> {
    pub inc: u64,
    pub rotate_every_secs: u64,
    pub key_uri_prefix: &'a str,
}
pub struct Context<'a> {
    pub playlist_path: &'a str,
    pub origin: OriginBase<'a>,
    pub encrypt: Option<Encrypt<'a>>,
    pub cap_param: &'a str,
    pub tag_param: &'a str,
    pub signer: &'a dyn TagSigner,
    pub max_bytes: usize,
}
#[derive(Debug)]
pub struct Template;
#[derive(Debug)]
pub enum RewriteError {
    TooLarge,
    NotPlaylist,
}
pub fn compile(_b: &[u8], _c: &Context) -> Result<Template, RewriteError> {
    Err(RewriteError::NotPlaylist)
}
impl Template {
    pub fn render(&self, _cap: &str) -> bytes::Bytes {
        bytes::Bytes::new()
    }
}
