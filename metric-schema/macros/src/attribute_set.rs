//! `#[attribute_set]` and `#[derive(AttributeEnum)]`.

use proc_macro2::{Span, TokenStream};
use quote::{format_ident, quote};
use syn::spanned::Spanned;
use syn::{Data, DeriveInput, Fields, ItemStruct, Type};

use crate::args::{Errors, doc_brief, helper_args, parse_args};
use crate::validate::check_name;

const SET_ARGS: &[&str] = &["name"];
const FIELD_ARGS: &[&str] = &["key", "include"];
const VARIANT_ARGS: &[&str] = &["value"];

enum Kind {
    String,
    Int,
    Double,
    Bool,
    Enum,
    Include,
}

fn classify(ty: &Type) -> Kind {
    let ident = match ty {
        Type::Reference(r) => return classify(&r.elem),
        Type::Path(p) => p.path.segments.last().map(|s| s.ident.to_string()),
        _ => None,
    };
    match ident.as_deref() {
        Some("String" | "str" | "Cow") => Kind::String,
        Some("i8" | "i16" | "i32" | "i64" | "u8" | "u16" | "u32" | "u64" | "usize" | "isize") => {
            Kind::Int
        }
        Some("f32" | "f64") => Kind::Double,
        Some("bool") => Kind::Bool,
        _ => Kind::Enum,
    }
}

pub(crate) fn expand(args: TokenStream, item: TokenStream) -> TokenStream {
    let mut item: ItemStruct = match syn::parse2(item) {
        Ok(item) => item,
        Err(e) => {
            return syn::Error::new(
                e.span(),
                "#[attribute_set] applies to a struct with named fields",
            )
            .to_compile_error();
        }
    };
    let mut errors = Errors::default();
    let set_args = parse_args(args, SET_ARGS, "`#[attribute_set]`", &mut errors);
    let mut set_name = String::new();
    match set_args.iter().find(|a| a.key == "name") {
        Some(arg) => {
            if let Some(lit) = arg.str(&mut errors) {
                if let Err(msg) = check_name(&lit.value(), "attribute set name", false) {
                    errors.push(lit.span(), msg);
                }
                set_name = lit.value();
            }
        }
        None => errors.push(
            Span::call_site(),
            "missing `name`: `#[attribute_set(name = \"my.entity\")]`",
        ),
    }
    if !item.generics.params.is_empty() {
        errors.push(
            item.generics.span(),
            "an attribute set cannot be generic: its descriptor is a single `'static` value",
        );
    }
    let set_brief = doc_brief(&item.attrs).unwrap_or_else(|| {
        errors.push(
            item.ident.span(),
            format!(
                "attribute set `{}` needs a doc comment: it becomes the set's brief",
                item.ident
            ),
        );
        String::new()
    });

    let p = quote!(::metric_schema::__private);
    let mut descriptors = Vec::new();
    let mut writes = Vec::new();
    let mut keys: Vec<(String, syn::Ident)> = Vec::new();
    let Fields::Named(named) = &mut item.fields else {
        errors.push(item.fields.span(), "an attribute set needs named fields");
        let e = errors.to_compile_errors();
        return quote!(#item #e);
    };
    for field in &mut named.named {
        let (descriptor, write) = field_tokens(field, &mut keys, &mut errors);
        descriptors.push(descriptor);
        writes.push(write);
    }
    if !errors.is_empty() {
        let e = errors.to_compile_errors();
        return quote!(#item #e);
    }
    let ident = &item.ident;
    let rust_type = format!("::{ident}");
    let registration = format_ident!("__METRIC_SCHEMA_ATTRS_{}", ident);
    quote! {
        #item

        impl #p::AttributeSet for #ident {
            const DESCRIPTOR: &'static #p::AttributesDescriptor = &#p::AttributesDescriptor {
                name: #set_name,
                brief: #set_brief,
                fields: &[#(#descriptors),*],
                rust_type: ::core::concat!(::core::module_path!(), #rust_type),
            };

            fn write_values(&self, out: &mut #p::Vec<#p::AttributeValue>) {
                #(#writes)*
            }
        }

        #[#p::linkme::distributed_slice(#p::ATTRIBUTE_SETS)]
        #[linkme(crate = #p::linkme)]
        #[allow(non_upper_case_globals)]
        #[doc(hidden)]
        static #registration: &'static #p::AttributesDescriptor =
            <#ident as #p::AttributeSet>::DESCRIPTOR;
    }
}

/// The descriptor entry and the value-writing statement of one field.
fn field_tokens(
    field: &mut syn::Field,
    keys: &mut Vec<(String, syn::Ident)>,
    errors: &mut Errors,
) -> (TokenStream, TokenStream) {
    let p = quote!(::metric_schema::__private);
    let ident = field.ident.clone().expect("named field");
    let args = helper_args(&field.attrs, "attribute", FIELD_ARGS, errors);
    field.attrs.retain(|a| !a.path().is_ident("attribute"));
    let include = args
        .iter()
        .find(|a| a.key == "include")
        .is_some_and(|a| a.flag(errors));
    let mut key = ident.to_string();
    let mut key_span = ident.span();
    if let Some(arg) = args.iter().find(|a| a.key == "key") {
        if include {
            errors.push(
                arg.key_span,
                "an included set brings its own keys: drop `key`",
            );
        }
        if let Some(lit) = arg.str(errors) {
            key = lit.value();
            key_span = lit.span();
        }
    }
    let brief = doc_brief(&field.attrs).unwrap_or_default();
    if brief.is_empty() && !include {
        errors.push(
            ident.span(),
            format!("attribute `{key}` needs a doc comment: it becomes the attribute's brief"),
        );
    }
    let ty = &field.ty;
    let kind = if include { Kind::Include } else { classify(ty) };
    if !include {
        if let Err(msg) = check_name(&key, "attribute key", false) {
            errors.push(key_span, msg);
        }
        if let Some((_, prev)) = keys.iter().find(|(k, _)| *k == key) {
            errors.push(
                key_span,
                format!("duplicate attribute key `{key}` (also used by field `{prev}`)"),
            );
        }
        keys.push((key.clone(), ident.clone()));
    }
    let attr_type = match kind {
        Kind::String => quote!(#p::AttributeType::String),
        Kind::Int => quote!(#p::AttributeType::Int),
        Kind::Double => quote!(#p::AttributeType::Double),
        Kind::Bool => quote!(#p::AttributeType::Bool),
        Kind::Enum => quote!(#p::AttributeType::Enum(<#ty as #p::AttributeEnum>::VALUES)),
        Kind::Include => {
            quote!(#p::AttributeType::Include(<#ty as #p::AttributeSet>::DESCRIPTOR))
        }
    };
    let descriptor = quote! {
        #p::AttributeField { key: #key, ty: #attr_type, brief: #brief }
    };
    let write = match kind {
        Kind::Include => quote!(<#ty as #p::AttributeSet>::write_values(&self.#ident, out);),
        Kind::Enum => quote! {
            out.push(#p::AttributeValue::Str(
                ::std::borrow::Cow::Borrowed(<#ty as #p::AttributeEnum>::as_str(&self.#ident))
            ));
        },
        _ => quote!(out.push(#p::IntoAttributeValue::to_attribute_value(&self.#ident));),
    };
    (descriptor, write)
}

/// `snake_case` of a `CamelCase` variant name.
fn snake_case(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

pub(crate) fn derive_enum(input: TokenStream) -> TokenStream {
    let input: DeriveInput = match syn::parse2(input) {
        Ok(i) => i,
        Err(e) => return e.to_compile_error(),
    };
    let mut errors = Errors::default();
    let Data::Enum(data) = &input.data else {
        return syn::Error::new(
            input.ident.span(),
            "AttributeEnum derives only on an enum of unit variants",
        )
        .to_compile_error();
    };
    let mut values: Vec<(syn::Ident, String)> = Vec::new();
    for variant in &data.variants {
        if !matches!(variant.fields, Fields::Unit) {
            errors.push(
                variant.span(),
                "an attribute enum is closed and flat: variants cannot carry data",
            );
            continue;
        }
        let args = helper_args(&variant.attrs, "attribute", VARIANT_ARGS, &mut errors);
        let mut value = snake_case(&variant.ident.to_string());
        let mut span = variant.ident.span();
        if let Some(lit) = args.first().and_then(|a| a.str(&mut errors)) {
            value = lit.value();
            span = lit.span();
        }
        if let Err(msg) = check_name(&value, "attribute enum value", false) {
            errors.push(span, msg);
        }
        if let Some((prev, _)) = values.iter().find(|(_, v)| *v == value) {
            errors.push(
                span,
                format!("duplicate value `{value}` (also used by `{prev}`)"),
            );
        }
        values.push((variant.ident.clone(), value));
    }
    if !errors.is_empty() {
        return errors.to_compile_errors();
    }
    let p = quote!(::metric_schema::__private);
    let ident = &input.ident;
    let (impl_generics, ty_generics, where_clause) = input.generics.split_for_impl();
    let strs: Vec<_> = values.iter().map(|(_, v)| v).collect();
    let variants: Vec<_> = values.iter().map(|(i, _)| i).collect();
    quote! {
        impl #impl_generics #p::AttributeEnum for #ident #ty_generics #where_clause {
            const VALUES: &'static [&'static str] = &[#(#strs),*];

            fn as_str(&self) -> &'static str {
                match *self {
                    #(Self::#variants => #strs,)*
                }
            }
        }
    }
}
