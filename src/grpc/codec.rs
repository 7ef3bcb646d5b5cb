//! The protobuf codec of this service's RPCs: prost's encoding, with one change. A request that
//! does not decode (invalid UTF-8 in a string, a wrong wire type, a truncated message) is the
//! client's fault, so it is answered `INVALID_ARGUMENT` with a `BadRequest` saying what could
//! not be read; tonic's own codec answers `INTERNAL`, which this service keeps for its bugs.
//! Written here because the change is the error's code, which tonic-prost does not let a caller
//! choose; the decoding itself is prost's.

use std::marker::PhantomData;

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The codec the generated clients and servers use (`codec_path` in `build.rs`).
#[derive(Debug, Clone)]
pub struct Codec<T, U>(PhantomData<(T, U)>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Codec(PhantomData)
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProtoEncoder<T>;
    type Decoder = ProtoDecoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        ProtoEncoder(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ProtoDecoder(PhantomData)
    }
}

/// Encodes `T` with prost.
#[derive(Debug, Clone)]
pub struct ProtoEncoder<T>(PhantomData<T>);

impl<T: Message> Encoder for ProtoEncoder<T> {
    type Item = T;
    type Error = Status;

    fn encode(&mut self, item: T, buf: &mut EncodeBuf<'_>) -> Result<(), Status> {
        // The buffer grows as needed, so encoding cannot run out of room.
        item.encode(buf)
            .map_err(|e| Status::internal(format!("encoding a response: {e}")))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// Decodes `U` with prost; what does not decode is `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct ProtoDecoder<U>(PhantomData<U>);

impl<U: Message + Default> Decoder for ProtoDecoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        U::decode(buf).map(Some).map_err(|e| undecodable(&e))
    }

    fn buffer_settings(&self) -> BufferSettings {
        BufferSettings::default()
    }
}

/// The status for a message that does not decode.
pub fn undecodable(error: &prost::DecodeError) -> Status {
    let description = format!("is not a valid protobuf message: {error}");
    Status::with_error_details(
        Code::InvalidArgument,
        format!("the message could not be decoded: {error}"),
        ErrorDetails::with_bad_request_violation("message", description),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn undecodable_messages_are_the_clients_fault() {
        use crate::proto::v1::SubmitCommentRequest;
        for bytes in [
            &[0x0a, 0x02, 0xff, 0xfe][..], // article_id: invalid UTF-8
            &[0x0a, 0x05, 0x61],           // truncated
            &[0x0b],                       // a group start, wrong wire type for field 1
        ] {
            let error = SubmitCommentRequest::decode(bytes).unwrap_err();
            let status = undecodable(&error);
            assert_eq!(status.code(), Code::InvalidArgument, "{bytes:?}");
            let bad = status.get_details_bad_request().unwrap();
            assert_eq!(bad.field_violations[0].field, "message");
        }
    }
}
