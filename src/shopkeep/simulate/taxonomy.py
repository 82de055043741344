"""The synthetic store's product taxonomy, vocabularies and shopper archetypes (static data only).

Prices are median USD for a mid-tier brand; a brand's tier multiplies them. ``complements`` drive the
sequential structure of sessions (a cleanser view makes a toner or moisturizer view likely next).
"""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = [
    "APPAREL_SIZES",
    "ARCHETYPES",
    "COLORS",
    "DEPARTMENTS",
    "LOCATIONS",
    "REGIONS",
    "SHOE_SIZES",
    "SKIN_TYPES",
    "TYPES",
    "Archetype",
    "TypeSpec",
]


@dataclass(frozen=True)
class TypeSpec:
    """One product type: where it sits, how it is priced, how its variants differ, what goes with it."""

    key: str
    department: str
    category: str
    noun: str
    price: float
    variant: str  # none | shade | volume | apparel_size | shoe_size
    share: float
    complements: tuple[str, ...]
    styles: tuple[str, ...]
    sizes_ml: tuple[int, ...] = ()


def _t(key: str, dept: str, cat: str, noun: str, price: float, variant: str, share: float,
       comp: str, styles: str, sizes: tuple[int, ...] = ()) -> TypeSpec:
    return TypeSpec(key, dept, cat, noun, price, variant, share, tuple(comp.split(",")) if comp else (),
                    tuple(styles.split(",")), sizes)


_SKIN = "Hydrating,Gentle,Daily,Clarifying,Soothing,Renewing,Barrier Repair,Brightening"
_HAIR = "Volumizing,Repairing,Smoothing,Curl Defining,Clarifying,Moisture"
_BODY = "Shea,Coconut,Lavender,Citrus,Oat,Eucalyptus,Almond"
_MAKE = "Velvet,Matte,Satin,Luminous,Long-Wear,Soft Focus"
_SCENT = "Noir,Blossom,Amber,Cedar,Citrus,Musk,Rose,Oud,Vanilla,Jasmine"
_APP = "Classic,Everyday,Relaxed,Tailored,Vintage,Essential,Modern"
_SHOE = "Summit,Trail,Urban,Classic,Ridge,Stride,Cloud,Canyon"
_FOOD = "Classic,Original,Honey,Dark Roast,Sea Salt,Vanilla,Chocolate,Cinnamon,Lemon,Unsweetened"

TYPES: tuple[TypeSpec, ...] = (
    _t("cleanser", "beauty", "Skincare", "Cleanser", 22, "volume", 1.2, "toner,moisturizer,serum", _SKIN,
       (150, 250, 400)),
    _t("moisturizer", "beauty", "Skincare", "Moisturizer", 32, "volume", 1.4, "sunscreen,serum,eye_cream", _SKIN,
       (50, 100)),
    _t("serum", "beauty", "Skincare", "Serum", 45, "none", 1.0, "moisturizer,eye_cream", _SKIN),
    _t("sunscreen", "beauty", "Skincare", "Sunscreen", 24, "volume", 1.0, "moisturizer,cleanser", _SKIN, (50, 100)),
    _t("toner", "beauty", "Skincare", "Toner", 20, "volume", 0.8, "serum,moisturizer", _SKIN, (150, 250)),
    _t("eye_cream", "beauty", "Skincare", "Eye Cream", 40, "none", 0.6, "serum,moisturizer", _SKIN),
    _t("foundation", "beauty", "Makeup", "Foundation", 36, "shade", 1.0, "concealer,blush", _MAKE),
    _t("lipstick", "beauty", "Makeup", "Lipstick", 22, "shade", 1.2, "blush,mascara", _MAKE),
    _t("mascara", "beauty", "Makeup", "Mascara", 20, "none", 0.7, "lipstick,concealer", _MAKE),
    _t("concealer", "beauty", "Makeup", "Concealer", 24, "shade", 0.7, "foundation,blush", _MAKE),
    _t("blush", "beauty", "Makeup", "Blush", 24, "shade", 0.6, "lipstick,foundation", _MAKE),
    _t("eau_de_parfum", "beauty", "Fragrance", "Eau de Parfum", 95, "volume", 1.0, "body_mist,eau_de_toilette",
       _SCENT, (30, 50, 100)),
    _t("eau_de_toilette", "beauty", "Fragrance", "Eau de Toilette", 65, "volume", 0.8, "eau_de_parfum,body_lotion",
       _SCENT, (30, 50, 100)),
    _t("body_mist", "beauty", "Fragrance", "Body Mist", 18, "none", 0.6, "body_lotion,eau_de_toilette", _SCENT),
    _t("shampoo", "beauty", "Hair", "Shampoo", 14, "volume", 1.0, "conditioner,hair_oil", _HAIR, (250, 500, 1000)),
    _t("conditioner", "beauty", "Hair", "Conditioner", 14, "volume", 0.9, "shampoo,hair_oil", _HAIR,
       (250, 500, 1000)),
    _t("hair_oil", "beauty", "Hair", "Hair Oil", 26, "none", 0.5, "shampoo,conditioner", _HAIR),
    _t("body_wash", "beauty", "Bath & Body", "Body Wash", 10, "volume", 0.8, "body_lotion,bath_bomb", _BODY,
       (250, 500)),
    _t("body_lotion", "beauty", "Bath & Body", "Body Lotion", 14, "volume", 0.8, "hand_cream,body_wash", _BODY,
       (200, 400)),
    _t("hand_cream", "beauty", "Bath & Body", "Hand Cream", 12, "none", 0.5, "body_lotion", _BODY),
    _t("bath_bomb", "beauty", "Bath & Body", "Bath Bomb", 8, "none", 0.4, "body_wash,body_lotion", _BODY),
    _t("beard_oil", "beauty", "Men's Grooming", "Beard Oil", 22, "none", 0.5, "shaving_cream,aftershave", _BODY),
    _t("shaving_cream", "beauty", "Men's Grooming", "Shaving Cream", 10, "none", 0.5, "razor,aftershave", _BODY),
    _t("aftershave", "beauty", "Men's Grooming", "Aftershave Balm", 28, "none", 0.4, "shaving_cream,beard_oil",
       _BODY),
    _t("razor", "beauty", "Men's Grooming", "Razor", 18, "none", 0.4, "shaving_cream", _BODY),
    _t("dress", "apparel", "Dresses", "Dress", 70, "apparel_size", 1.4, "sandal,ankle_boot,dress_shoe",
       "Evening,Midi,Wrap,Maxi,Slip,Shift,Cocktail"),
    _t("t_shirt", "apparel", "Tops", "T-Shirt", 22, "apparel_size", 1.2, "jeans,sneaker", _APP),
    _t("blouse", "apparel", "Tops", "Blouse", 45, "apparel_size", 0.8, "jeans,dress_shoe", _APP),
    _t("sweater", "apparel", "Tops", "Sweater", 60, "apparel_size", 0.8, "jeans,ankle_boot", _APP),
    _t("jeans", "apparel", "Bottoms", "Jeans", 65, "apparel_size", 1.0, "t_shirt,sneaker,sweater", _APP),
    _t("leggings", "apparel", "Activewear", "Leggings", 40, "apparel_size", 0.7, "running_shoe,t_shirt", _APP),
    _t("jacket", "apparel", "Outerwear", "Jacket", 120, "apparel_size", 0.8, "hiking_boot,sweater", _APP),
    _t("hiking_boot", "footwear", "Boots", "Hiking Boot", 140, "shoe_size", 1.0, "jacket,running_shoe", _SHOE),
    _t("ankle_boot", "footwear", "Boots", "Ankle Boot", 130, "shoe_size", 0.8, "jeans,dress", _SHOE),
    _t("sneaker", "footwear", "Sneakers", "Sneaker", 85, "shoe_size", 1.2, "jeans,t_shirt", _SHOE),
    _t("running_shoe", "footwear", "Athletic", "Running Shoe", 110, "shoe_size", 1.0, "leggings,t_shirt", _SHOE),
    _t("sandal", "footwear", "Sandals", "Sandal", 45, "shoe_size", 0.7, "dress", _SHOE),
    _t("dress_shoe", "footwear", "Dress Shoes", "Dress Shoe", 120, "shoe_size", 0.6, "jacket,blouse", _SHOE),
    _t("pasta", "grocery", "Pantry", "Pasta", 3.5, "none", 1.0, "olive_oil", _FOOD),
    _t("olive_oil", "grocery", "Pantry", "Olive Oil", 12, "volume", 0.8, "pasta", _FOOD, (500, 1000)),
    _t("granola", "grocery", "Breakfast", "Granola", 6, "none", 0.9, "yogurt,oat_milk", _FOOD),
    _t("peanut_butter", "grocery", "Pantry", "Peanut Butter", 5, "none", 0.7, "granola", _FOOD),
    _t("chips", "grocery", "Snacks", "Chips", 4, "none", 1.0, "sparkling_water", _FOOD),
    _t("protein_bar", "grocery", "Snacks", "Protein Bar", 2.5, "none", 0.9, "granola,sparkling_water", _FOOD),
    _t("coffee", "grocery", "Beverages", "Coffee", 11, "none", 1.0, "oat_milk", _FOOD),
    _t("tea", "grocery", "Beverages", "Tea", 6, "none", 0.7, "", _FOOD),
    _t("sparkling_water", "grocery", "Beverages", "Sparkling Water", 5, "none", 0.7, "chips", _FOOD),
    _t("oat_milk", "grocery", "Dairy & Alternatives", "Oat Milk", 4.5, "volume", 0.8, "coffee,granola", _FOOD,
       (1000, 1890)),
    _t("yogurt", "grocery", "Dairy & Alternatives", "Yogurt", 4, "none", 0.8, "granola", _FOOD),
)

#: Share of items per department (renormalised over the enabled ones).
DEPARTMENTS: dict[str, float] = {"beauty": 0.45, "apparel": 0.2, "footwear": 0.15, "grocery": 0.2}
DEPARTMENT_LABELS = {"beauty": "Beauty & Personal Care", "apparel": "Apparel", "footwear": "Footwear",
                     "grocery": "Grocery"}

#: Canonical colors with the words a title may use for each.
COLORS: dict[str, tuple[str, ...]] = {
    "red": ("Crimson", "Scarlet", "Red", "Cherry"),
    "black": ("Black", "Onyx", "Jet"),
    "white": ("White", "Ivory", "Cream"),
    "blue": ("Navy", "Cobalt", "Blue"),
    "green": ("Olive", "Emerald", "Sage"),
    "pink": ("Blush", "Rose", "Pink"),
    "brown": ("Tan", "Chestnut", "Brown"),
    "grey": ("Grey", "Charcoal", "Slate"),
}
APPAREL_MATERIALS = ("Satin", "Cotton", "Linen", "Silk", "Wool", "Denim", "Jersey")
SHOE_MATERIALS = ("Leather", "Suede", "Mesh", "Canvas", "Nubuck")
APPAREL_FITS = ("slim", "regular", "relaxed")
APPAREL_SIZES = ("XS", "S", "M", "L", "XL")
SHOE_SIZES = tuple(range(6, 14))
SKIN_TYPES = ("dry", "oily", "combination", "sensitive", "normal")
DIETARY = ("keto", "paleo", "low_sugar", "high_protein", "non_gmo", "kosher")
KEY_INGREDIENTS = ("hyaluronic acid", "niacinamide", "vitamin c", "retinol", "ceramides", "salicylic acid")
SHADES: dict[str, tuple[str, ...]] = {
    "foundation": ("fair", "light", "medium", "tan", "deep"),
    "concealer": ("fair", "light", "medium", "tan", "deep"),
    "lipstick": ("red", "nude", "pink", "berry", "coral"),
    "blush": ("pink", "peach", "bronze", "berry"),
}
SHADE_WORDS = ("Petal", "Ember", "Dune", "Velour", "Cocoa", "Fig", "Ruby", "Silk", "Honey", "Mocha")

LOCATIONS = ("warehouse", "store-01", "store-02", "store-03", "store-04", "store-05")
REGIONS: dict[str, float] = {"US-CA": 0.2, "US-NY": 0.15, "US-TX": 0.15, "US-FL": 0.1, "US-WA": 0.08,
                             "US-IL": 0.08, "US-UT": 0.04, "CA-ON": 0.08, "EU-DE": 0.07, "EU-FR": 0.05}
#: regulated_class -> regions where a sale needs a verified age (alcohol) or is restricted (retinoids).
REGULATED = {"age_restricted_alcohol": ("US-UT", "CA-ON"), "retinoid": ("EU-DE", "EU-FR")}

BRAND_PARTS = (
    ("Aveline", "Lumi", "Maison", "Nordic", "Verde", "Solen", "Kinfolk", "Atelier", "Juniper", "Orla", "Terra",
     "Bright", "Cedar", "Halcyon", "Ridgeway", "Wild", "Pure", "Golden", "Harbor", "Marlow", "Velvet", "Nova"),
    ("Labs", "& Co", "Botanics", "Studio", "Collective", "Supply", "Goods", "House", "Works", "Naturals", "Paris",
     "Outfitters", "Skin", "Provisions", "Apothecary", "Atelier"),
)
TIERS = ("budget", "mid", "premium", "luxury")
TIER_MULT = (0.6, 1.0, 1.6, 2.8)


@dataclass(frozen=True)
class Archetype:
    """A shopper segment's prior: category weights, focus types, attribute preferences and money habits."""

    weight: float
    categories: dict[str, float]
    focus: tuple[str, ...] = ()
    prefs: dict[str, float] = field(default_factory=dict)
    budget: float = 1.0
    price_sensitivity: float = 1.0
    activity: float = 1.0
    replenish: float = 0.2


ARCHETYPES: dict[str, Archetype] = {
    "skincare_minimalist": Archetype(0.12, {"Skincare": 1.0}, ("cleanser", "moisturizer", "sunscreen"),
                                     {"fragrance_free": 1.5, "cruelty_free": 0.3}, 1.0, 1.0, 0.7, 0.6),
    "beauty_enthusiast": Archetype(0.12, {"Skincare": 0.4, "Makeup": 0.6}, ("lipstick", "foundation", "serum"),
                                   {"cruelty_free": 0.6, "vegan": 0.4}, 1.2, 0.8, 1.5, 0.1),
    "fragrance_lover": Archetype(0.08, {"Fragrance": 0.8, "Bath & Body": 0.2}, ("eau_de_parfum",),
                                 {}, 1.7, 0.6, 1.0, 0.1),
    "hair_and_body": Archetype(0.08, {"Hair": 0.6, "Bath & Body": 0.4}, ("shampoo", "conditioner"),
                               {"vegan": 0.5}, 0.8, 1.2, 0.9, 0.5),
    "mens_grooming": Archetype(0.07, {"Men's Grooming": 0.7, "Hair": 0.15, "Fragrance": 0.15},
                               ("beard_oil", "shaving_cream"), {}, 1.0, 1.0, 0.7, 0.4),
    "fashionista": Archetype(0.12, {"Dresses": 0.45, "Tops": 0.3, "Dress Shoes": 0.1, "Sandals": 0.15},
                             ("dress", "blouse"), {"color": 1.2}, 1.3, 0.9, 1.3, 0.0),
    "outdoor_enthusiast": Archetype(0.08, {"Boots": 0.5, "Outerwear": 0.35, "Athletic": 0.15},
                                    ("hiking_boot", "jacket"), {"waterproof": 1.5}, 1.2, 0.8, 0.8, 0.0),
    "athleisure": Archetype(0.09, {"Athletic": 0.4, "Activewear": 0.3, "Sneakers": 0.3},
                            ("running_shoe", "leggings"), {}, 1.0, 1.0, 1.0, 0.0),
    "bargain_grocery": Archetype(0.14, {"Pantry": 0.3, "Snacks": 0.3, "Beverages": 0.25, "Breakfast": 0.15},
                                 ("pasta", "chips", "coffee"), {}, 0.6, 2.2, 1.2, 0.7),
    "healthy_grocery": Archetype(0.10, {"Breakfast": 0.3, "Dairy & Alternatives": 0.3, "Pantry": 0.2,
                                        "Beverages": 0.2}, ("granola", "oat_milk"),
                                 {"organic": 1.5, "vegan": 1.0, "gluten_free": 1.0}, 1.2, 0.8, 1.1, 0.6),
}
