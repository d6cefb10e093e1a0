//! What a Lambda function may do to the table and the bucket. Every route of the route table
//! names the capabilities its handler needs on the AWS backend ([`crate::http::routes`]), and
//! so does the finalize function ([`FINALIZE`]); `scripts/gen-template.py` turns them into each
//! function's IAM policy, which the `template` test checks. A capability is the smallest group
//! of IAM actions on one resource that some call of `store/dynamo.rs` or `store/s3.rs` needs.
//! Only the bucket's objects are a wildcard: keys are made at run time. The bucket is encrypted
//! with S3-managed keys (SSE-S3), which needs no KMS permission.

/// A resource a policy statement names, as the template writes its ARN: a CloudFormation
/// intrinsic function and its argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Resource {
    /// `GetAtt` or `Sub`.
    pub function: &'static str,
    pub argument: &'static str,
}

macro_rules! resources {
    ($($konst:ident = $function:literal, $argument:literal;)*) => {
        $(
            #[doc = concat!("`!", $function, " ", $argument, "`")]
            pub const $konst: Resource = Resource { function: $function, argument: $argument };
        )*
    };
}

// `scripts/gen-template.py` reads these rows: keep one per line.
#[rustfmt::skip]
resources! {
    TABLE = "GetAtt", "Table.Arn";
    LEFTOVERS_INDEX = "Sub", "${Table.Arn}/index/gsi1";
    BUCKET = "GetAtt", "Bucket.Arn";
    OBJECTS = "Sub", "${Bucket.Arn}/*";
}

/// One thing a function may do: IAM actions on one resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Capability {
    /// API keys (every route authenticates), parents, attachments, versions.
    TableRead,
    /// Also what `TransactWriteItems` checks for each of its items.
    TableWrite,
    /// The sweep finds expired uploads and unfinished deletions through the leftovers index.
    IndexRead,
    /// Reading (`GetObject`, `HeadObject`) and signing download links, which S3 checks against
    /// the signer's permissions when they are followed.
    ObjectRead,
    /// S3 answers 404 for a missing object only to a caller that may list the bucket (else
    /// 403): needed where the code looks for an object that may not be there yet.
    BucketList,
    /// Storing objects and thumbnails, signing form uploads, and starting, uploading parts of
    /// and completing multipart uploads, which S3 all checks as `PutObject`.
    ObjectWrite,
    /// Deleting files and thumbnails, and cleaning up after a failed upload.
    ObjectDelete,
    /// Which parts of a direct upload storage has received.
    MultipartList,
    /// Dropping an unfinished direct upload and its parts.
    MultipartAbort,
    /// The sweep finds the staging prefix's multipart uploads that no upload waits for.
    UploadsList,
}

macro_rules! grants {
    ($($cap:ident = $resource:ident: $($action:literal),+;)*) => {
        impl Capability {
            /// Every capability, in the order of the rows below.
            pub const ALL: &'static [Capability] = &[$(Capability::$cap),*];

            /// The resource this capability grants IAM actions on, and the actions.
            pub const fn grant(self) -> (Resource, &'static [&'static str]) {
                match self {
                    $(Capability::$cap => ($resource, &[$($action),+]),)*
                }
            }
        }
    };
}

// `scripts/gen-template.py` reads these rows: keep one per line.
#[rustfmt::skip]
grants! {
    TableRead = TABLE: "dynamodb:GetItem", "dynamodb:BatchGetItem", "dynamodb:Query";
    TableWrite = TABLE: "dynamodb:PutItem", "dynamodb:UpdateItem", "dynamodb:DeleteItem", "dynamodb:BatchWriteItem";
    IndexRead = LEFTOVERS_INDEX: "dynamodb:Query";
    ObjectRead = OBJECTS: "s3:GetObject";
    BucketList = BUCKET: "s3:ListBucket";
    ObjectWrite = OBJECTS: "s3:PutObject";
    ObjectDelete = OBJECTS: "s3:DeleteObject";
    MultipartList = OBJECTS: "s3:ListMultipartUploadParts";
    MultipartAbort = OBJECTS: "s3:AbortMultipartUpload";
    UploadsList = BUCKET: "s3:ListBucketMultipartUploads";
}

use std::collections::BTreeSet;

use Capability::*;

/// The finalize function (`storage_events`): verifying a direct upload needs what
/// `POST /v1/attachments/{id}/complete` needs; the sweep also queries the leftovers index and
/// lists the staging prefix's multipart uploads for orphans.
// `scripts/gen-template.py` reads this line.
#[rustfmt::skip]
pub const FINALIZE: &[Capability] = &[TableRead, TableWrite, IndexRead, ObjectRead, BucketList, ObjectWrite, ObjectDelete, MultipartList, MultipartAbort, UploadsList];

/// Every (action, resource) pair that `needs` grants, sorted and without repeats.
pub fn permissions(needs: &[Capability]) -> BTreeSet<(&'static str, Resource)> {
    let pairs = needs.iter().map(|c| c.grant());
    pairs
        .flat_map(|(resource, actions)| actions.iter().map(move |a| (*a, resource)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_two_capabilities_grant_the_same_action_on_the_same_resource() {
        let all = Capability::ALL;
        let total: usize = all.iter().map(|c| c.grant().1.len()).sum();
        assert_eq!(permissions(all).len(), total);
    }

    #[test]
    fn the_index_is_the_one_the_store_queries() {
        assert_eq!(
            LEFTOVERS_INDEX.argument,
            format!(
                "${{Table.Arn}}/index/{}",
                crate::store::dynamo::LEFTOVERS_INDEX
            )
        );
    }
}
