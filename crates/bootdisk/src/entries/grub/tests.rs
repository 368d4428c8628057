use super::parse;

fn menu(text: &str) -> crate::entries::Menu {
    parse(text, &mut |_| None).unwrap()
}
