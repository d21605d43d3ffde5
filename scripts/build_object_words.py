"""Build captioner/data/imagenet_words.json: ImageNet-1k class -> caption word, by WordNet.

    python -m scripts.build_object_words [--wordnet /usr/share/wordnet]

Run from the repo root. Needs WordNet 3.0's database files (Debian's `wordnet-base` puts them in
/usr/share/wordnet) and nltk, at build time only; the library reads the JSON alone.

Each ImageNet class is a WordNet 3.0 noun synset (timm ships their offsets, n02123045 ...).
From it a breadth-first walk over hypernyms (the synset itself first, then its parents, then
theirs) stops at the first synset in TARGETS, the concepts people name in captions, and gives
its word: golden retriever -> dog, Egyptian cat -> cat, school bus -> bus, espresso -> coffee.
A class that reaches no target (or a target with no word) gets no entry. The same walk over
KINDS gives each class its kind, the coarser word a caption can fall back to when the
classifier cannot tell which of several things it sees (lion, tiger -> animal; lemon,
strawberry -> fruit). The JSON also carries COCO's 80 categories with their synonyms
(captioner/data/coco_synonyms.txt, CHAIR's list), so the runtime needs one file.
"""
from __future__ import annotations

import argparse
import json
import shutil
import tempfile
from collections import Counter
from pathlib import Path

from captioner.files import atomic_write_text
from captioner.object_words import parse_synonyms

DATA = Path("captioner/data")
OUT = DATA / "imagenet_words.json"
SYNONYMS = DATA / "coco_synonyms.txt"

# WordNet's 45 lexicographer files, in file-number order (lexnames(5WN)); nltk's reader needs
# the `lexnames` file Debian does not ship. The syntactic category follows from the name.
LEXNAMES = (
    "adj.all", "adj.pert", "adv.all", "noun.Tops", "noun.act", "noun.animal", "noun.artifact",
    "noun.attribute", "noun.body", "noun.cognition", "noun.communication", "noun.event",
    "noun.feeling", "noun.food", "noun.group", "noun.location", "noun.motive", "noun.object",
    "noun.person", "noun.phenomenon", "noun.plant", "noun.possession", "noun.process",
    "noun.quantity", "noun.relation", "noun.shape", "noun.state", "noun.substance", "noun.time",
    "verb.body", "verb.change", "verb.cognition", "verb.communication", "verb.competition",
    "verb.consumption", "verb.contact", "verb.creation", "verb.emotion", "verb.motion",
    "verb.perception", "verb.possession", "verb.social", "verb.stative", "verb.weather",
    "adj.ppl",
)
SYNTACTIC_CATEGORY = {"noun": 1, "verb": 2, "adj": 3, "adv": 4}

NOT_IN_WORDNET = ("stop sign",)  # COCO categories WordNet 3.0 has no synset for

# The target concepts: (WordNet synset, caption word, COCO category or None). The word is the
# one captions use (Flickr8k and COCO say "bike", "plane", "table", "tv", "phone"). A COCO
# category may take several synsets where WordNet splits what COCO lumps (trains and
# locomotives; tables and desks). Categories with no ImageNet class below them (giraffe,
# hair drier, ...) still get their synset, so the list is complete and checked. A word of None
# stops the walk: the classes below get no word. Where two targets are equally near, the one
# listed first wins.
TARGETS = (
    ("person.n.01", "person", "person"),
    ("bicycle.n.01", "bike", "bicycle"),
    ("car.n.01", "car", "car"),
    ("motorcycle.n.01", "motorcycle", "motorcycle"),
    ("motor_scooter.n.01", "scooter", "motorcycle"),
    ("moped.n.01", "moped", "motorcycle"),
    ("airplane.n.01", "plane", "airplane"),
    ("bus.n.01", "bus", "bus"),
    ("train.n.01", "train", "train"),
    ("locomotive.n.01", "train", "train"),
    ("streetcar.n.01", "train", "train"),
    ("car.n.02", "train", "train"),  # a railcar: passenger car, freight car
    ("truck.n.01", "truck", "truck"),
    ("vessel.n.02", "boat", "boat"),
    ("traffic_light.n.01", "traffic light", "traffic light"),
    ("fireplug.n.01", "fire hydrant", "fire hydrant"),
    ("parking_meter.n.01", "parking meter", "parking meter"),
    ("bench.n.01", "bench", "bench"),
    ("bird.n.01", "bird", "bird"),
    ("domestic_cat.n.01", "cat", "cat"),
    ("dog.n.01", "dog", "dog"),
    ("horse.n.01", "horse", "horse"),
    ("sheep.n.01", "sheep", "sheep"),
    ("cattle.n.01", "cow", "cow"),
    ("bison.n.01", "buffalo", "cow"),  # CHAIR counts buffalo and bison as cows
    ("old_world_buffalo.n.01", "buffalo", "cow"),
    ("elephant.n.01", "elephant", "elephant"),
    ("bear.n.01", "bear", "bear"),
    ("giant_panda.n.01", "panda", "bear"),  # a procyonid in WordNet, a bear to CHAIR
    ("zebra.n.01", "zebra", "zebra"),
    ("giraffe.n.01", "giraffe", "giraffe"),
    ("backpack.n.01", "backpack", "backpack"),
    ("umbrella.n.01", "umbrella", "umbrella"),
    ("bag.n.04", "purse", "handbag"),
    ("wallet.n.01", "wallet", "handbag"),
    ("necktie.n.01", "tie", "tie"),
    ("bag.n.06", "suitcase", "suitcase"),
    ("frisbee.n.01", "frisbee", "frisbee"),
    ("ski.n.01", "skis", "skis"),
    ("snowboard.n.01", "snowboard", "snowboard"),
    ("ball.n.01", "ball", "sports ball"),
    ("kite.n.03", "kite", "kite"),
    ("baseball_bat.n.01", "baseball bat", "baseball bat"),
    ("baseball_glove.n.01", "baseball glove", "baseball glove"),
    ("skateboard.n.01", "skateboard", "skateboard"),
    ("surfboard.n.01", "surfboard", "surfboard"),
    ("racket.n.04", "racket", "tennis racket"),
    ("bottle.n.01", "bottle", "bottle"),
    ("wineglass.n.01", "wine glass", "wine glass"),
    ("goblet.n.01", "glass", "wine glass"),  # a stemmed glass
    ("cup.n.01", "cup", "cup"),
    ("mug.n.04", "mug", "cup"),
    ("fork.n.01", "fork", "fork"),
    ("knife.n.01", "knife", "knife"),
    ("spoon.n.01", "spoon", "spoon"),
    ("bowl.n.03", "bowl", "bowl"),
    ("banana.n.02", "banana", "banana"),
    ("apple.n.01", "apple", "apple"),
    ("sandwich.n.01", "sandwich", "sandwich"),
    ("orange.n.01", "orange", "orange"),
    ("broccoli.n.02", "broccoli", "broccoli"),
    ("carrot.n.03", "carrot", "carrot"),
    ("hotdog.n.02", "hot dog", "hot dog"),
    ("pizza.n.01", "pizza", "pizza"),
    ("doughnut.n.02", "donut", "donut"),
    ("bagel.n.01", "bagel", "donut"),
    ("cake.n.03", "cake", "cake"),
    ("chair.n.01", "chair", "chair"),
    ("sofa.n.01", "couch", "couch"),
    ("pot.n.04", "plant", "potted plant"),  # a flowerpot
    ("bed.n.01", "bed", "bed"),
    ("table.n.02", "table", "dining table"),  # the furniture: desks, pool tables
    ("table.n.03", "table", "dining table"),  # a table laid for a meal: dining tables
    ("toilet.n.02", "toilet", "toilet"),
    ("toilet_seat.n.01", "toilet", "toilet"),
    ("television_receiver.n.01", "tv", "tv"),
    ("television.n.02", "tv", "tv"),  # ImageNet's "television" class names the system
    ("monitor.n.05", "monitor", "tv"),  # ImageNet's "monitor": its photos are screens
    ("screen.n.03", "monitor", "tv"),
    ("portable_computer.n.01", "laptop", "laptop"),
    ("desktop_computer.n.01", "computer", "laptop"),  # CHAIR counts computers as laptops
    ("mouse.n.04", "mouse", "mouse"),
    ("remote_control.n.01", "remote", "remote"),
    ("computer_keyboard.n.01", "keyboard", "keyboard"),
    ("telephone.n.01", "phone", "cell phone"),
    ("microwave.n.02", "microwave", "microwave"),
    ("oven.n.01", "oven", "oven"),
    ("stove.n.01", "stove", "oven"),
    ("toaster.n.02", "toaster", "toaster"),
    ("sink.n.01", "sink", "sink"),
    ("washbasin.n.02", "sink", "sink"),
    ("refrigerator.n.01", "refrigerator", "refrigerator"),
    ("book.n.02", "book", "book"),
    ("comic_book.n.01", "book", "book"),
    ("book_jacket.n.01", "book", "book"),  # ImageNet's photos of book covers
    ("clock.n.01", "clock", "clock"),
    ("vase.n.01", "vase", "vase"),
    ("scissors.n.01", "scissors", "scissors"),
    ("teddy.n.01", "teddy bear", "teddy bear"),
    ("hand_blower.n.01", "hair drier", "hair drier"),
    ("toothbrush.n.01", "toothbrush", "toothbrush"),
    # ImageNet classes that are COCO objects though WordNet files them elsewhere.
    ("tusker.n.01", "elephant", "elephant"),  # an elephant with tusks
    ("wild_dog.n.01", "dog", "dog"),  # dingo, dhole, African hunting dog
    ("wild_sheep.n.01", "sheep", "sheep"),  # bighorn
    ("goat.n.01", "goat", "sheep"),  # CHAIR counts goats as sheep
    ("warplane.n.01", "plane", "airplane"),
    ("purse.n.03", "purse", "handbag"),
    ("glass.n.02", "glass", "wine glass"),  # beer glass: "glass" is already the goblet's word
    ("cup.n.06", "cup", "cup"),  # a punch in WordNet; ImageNet's photos are cups
    ("stove.n.02", "stove", "oven"),  # the heater; ImageNet's photos are mostly kitchen stoves
    ("tricycle.n.01", "tricycle", "bicycle"),  # CHAIR: trike, unicycle are bicycles
    ("unicycle.n.01", "unicycle", "bicycle"),
    ("space_bar.n.01", "keyboard", "keyboard"),  # ImageNet's photos are keyboards
    # Outside COCO: the plain word a caption writer uses for what an ImageNet class shows,
    # generic enough that a caption can say it ("lizard", not "agama"; "store", not
    # "confectionery"). Classes with no such word (trilobite, oscilloscope) get none.
    # Clothing.
    ("shirt.n.01", "shirt", None),
    ("sweatshirt.n.01", "sweatshirt", None),
    ("sweater.n.01", "sweater", None),
    ("coat.n.01", "coat", None),
    ("suit.n.01", "suit", None),
    ("uniform.n.01", "uniform", None),
    ("dress.n.01", "dress", None),  # gown
    ("skirt.n.02", "skirt", None),
    ("robe.n.01", "robe", None),  # abaya, kimono
    ("academic_gown.n.01", "gown", None),
    ("vestment.n.01", "robe", None),
    ("jean.n.01", "jeans", None),
    ("swimsuit.n.01", "swimsuit", None),
    ("bikini.n.02", "bikini", None),
    ("swimming_trunks.n.01", "trunks", None),
    ("pajama.n.02", "pajamas", None),
    ("apron.n.01", "apron", None),
    ("bib.n.01", "bib", None),
    ("diaper.n.01", "diaper", None),
    ("brassiere.n.01", "bra", None),
    ("poncho.n.01", "poncho", None),
    ("scarf.n.01", "scarf", None),  # feather boa, stole
    ("cloak.n.01", "cape", None),
    ("hat.n.01", "hat", None),
    ("cap.n.01", "cap", None),  # bathing cap, shower cap, mortarboard
    ("helmet.n.02", "helmet", None),
    ("helmet.n.01", "helmet", None),  # pickelhaube
    ("mask.n.04", "mask", None),
    ("mask.n.01", "mask", None),
    ("oxygen_mask.n.01", "mask", None),
    ("glove.n.02", "glove", None),  # mitten
    ("shoe.n.01", "shoe", None),  # running shoe, sandal, loafer
    ("clog.n.01", "shoe", None),
    ("boot.n.01", "boot", None),
    ("sock.n.01", "sock", None),
    ("christmas_stocking.n.01", "stocking", None),
    ("sunglasses.n.01", "sunglasses", None),
    ("sunglass.n.01", "sunglasses", None),  # a lens in WordNet; ImageNet's photos are sunglasses
    ("wig.n.01", "wig", None),
    ("necklace.n.01", "necklace", None),
    ("buckle.n.01", "belt", None),  # ImageNet's photos are belt buckles
    ("watch.n.01", "watch", None),
    ("armor.n.01", "armor", None),
    ("body_armor.n.01", "armor", None),  # chain mail, cuirass
    ("breastplate.n.01", "armor", None),
    ("bulletproof_vest.n.01", "vest", None),
    # Food and drink.
    ("ice_cream.n.01", "ice cream", None),
    ("ice_lolly.n.01", "popsicle", None),
    ("dessert.n.01", "dessert", None),  # trifle
    ("bread.n.01", "bread", None),  # French loaf
    ("pretzel.n.01", "pretzel", None),
    ("plate.n.08", "plate", None),  # a main course; ImageNet's photos are plates of food
    ("soup.n.01", "soup", None),  # consomme
    ("stew.n.02", "stew", None),  # hot pot
    ("carbonara.n.01", "pasta", None),
    ("burrito.n.01", "burrito", None),
    ("potpie.n.01", "pie", None),
    ("meat_loaf.n.01", "meat", None),
    ("dough.n.01", "dough", None),
    ("guacamole.n.01", "guacamole", None),
    ("chocolate_sauce.n.01", "chocolate", None),
    ("menu.n.02", "menu", None),
    ("coffee.n.01", "coffee", None),  # espresso
    ("wine.n.01", "wine", None),
    ("hay.n.01", "hay", None),
    ("potato.n.01", "potato", None),  # mashed potato
    ("cabbage.n.01", "cabbage", None),
    ("cauliflower.n.02", "cauliflower", None),
    ("zucchini.n.02", "zucchini", None),
    ("squash.n.02", "squash", None),
    ("cucumber.n.02", "cucumber", None),
    ("artichoke.n.02", "artichoke", None),
    ("sweet_pepper.n.02", "pepper", None),
    ("mushroom.n.05", "mushroom", None),
    ("fungus.n.01", "mushroom", None),  # agaric, bolete, stinkhorn...
    ("corn.n.02", "corn", None),
    ("ear.n.05", "corn", None),  # an ear of corn
    ("acorn.n.01", "acorn", None),
    ("strawberry.n.01", "strawberry", None),
    ("lemon.n.01", "lemon", None),
    ("fig.n.04", "fig", None),
    ("pineapple.n.02", "pineapple", None),
    ("pomegranate.n.02", "pomegranate", None),
    ("jack-o'-lantern.n.02", "pumpkin", None),
    # Animals.
    ("fish.n.01", "fish", None),
    ("monkey.n.01", "monkey", None),
    ("gorilla.n.01", "gorilla", None),
    ("chimpanzee.n.01", "chimpanzee", None),
    ("orangutan.n.01", "orangutan", None),
    ("lemur.n.01", "lemur", None),
    ("lion.n.01", "lion", None),
    ("tiger.n.02", "tiger", None),
    ("leopard.n.02", "leopard", None),
    ("snow_leopard.n.01", "leopard", None),
    ("jaguar.n.01", "jaguar", None),
    ("cheetah.n.01", "cheetah", None),
    ("cougar.n.01", "cougar", None),
    ("lynx.n.02", "lynx", None),
    ("wolf.n.01", "wolf", None),
    ("coyote.n.01", "coyote", None),
    ("fox.n.01", "fox", None),
    ("hyena.n.01", "hyena", None),
    ("meerkat.n.01", "meerkat", None),
    ("mongoose.n.01", "mongoose", None),
    ("otter.n.02", "otter", None),
    ("skunk.n.04", "skunk", None),
    ("badger.n.02", "badger", None),
    ("weasel.n.02", "weasel", None),
    ("black-footed_ferret.n.01", "ferret", None),
    ("leporid.n.01", "rabbit", None),  # rabbits and hares
    ("squirrel.n.01", "squirrel", None),
    ("hamster.n.01", "hamster", None),
    ("beaver.n.07", "beaver", None),
    ("porcupine.n.01", "porcupine", None),
    ("swine.n.01", "pig", None),  # hog, wild boar, warthog
    ("hippopotamus.n.01", "hippo", None),
    ("antelope.n.01", "antelope", None),  # hartebeest, impala, gazelle
    ("camel.n.01", "camel", None),
    ("llama.n.01", "llama", None),
    ("kangaroo.n.01", "kangaroo", None),  # wallaby
    ("koala.n.01", "koala", None),
    ("armadillo.n.01", "armadillo", None),
    ("sloth.n.02", "sloth", None),
    ("whale.n.02", "whale", None),  # killer whale too
    ("pinniped_mammal.n.01", "seal", None),  # sea lion
    ("snake.n.01", "snake", None),
    ("lizard.n.01", "lizard", None),  # chameleons, iguanas, Komodo dragon
    ("crocodile.n.01", "crocodile", None),
    ("alligator.n.02", "alligator", None),
    ("turtle.n.02", "turtle", None),
    ("frog.n.01", "frog", None),
    ("dinosaur.n.01", "dinosaur", None),  # triceratops
    ("spider.n.01", "spider", None),
    ("scorpion.n.03", "scorpion", None),
    ("centipede.n.01", "centipede", None),
    ("butterfly.n.01", "butterfly", None),
    ("odonate.n.01", "dragonfly", None),  # dragonfly, damselfly
    ("bee.n.01", "bee", None),
    ("ant.n.01", "ant", None),
    ("grasshopper.n.01", "grasshopper", None),
    ("ladybug.n.01", "ladybug", None),
    ("beetle.n.01", "beetle", None),
    ("insect.n.01", "bug", None),  # fly, cricket, cicada...: not "fly" or "cricket", verb and sport
    ("crab.n.01", "crab", None),
    ("hermit_crab.n.01", "crab", None),
    ("lobster.n.02", "lobster", None),
    ("snail.n.01", "snail", None),
    ("slug.n.07", "slug", None),
    ("conch.n.01", "shell", None),  # ImageNet's photos are shells
    ("chambered_nautilus.n.01", "shell", None),
    ("jellyfish.n.02", "jellyfish", None),
    ("starfish.n.01", "starfish", None),
    ("coral.n.04", "coral", None),  # brain coral
    ("worm.n.01", "worm", None),
    # Plants.
    ("flower.n.01", "flower", None),
    # Vehicles.
    ("rocket.n.01", "rocket", None),
    ("space_shuttle.n.01", "rocket", None),
    ("missile.n.01", "rocket", None),
    ("projectile.n.01", "rocket", None),  # ImageNet's "projectile, missile"
    ("tractor.n.01", "tractor", None),
    ("forklift.n.01", "forklift", None),
    ("tank.n.01", "tank", None),
    ("recreational_vehicle.n.01", "rv", None),
    ("snowmobile.n.01", "snowmobile", None),
    ("snowplow.n.01", "plow", None),
    ("plow.n.01", "plow", None),
    ("sled.n.01", "sled", None),  # bobsled, dogsled
    ("cart.n.01", "cart", None),  # horse cart, oxcart, jinrikisha
    ("handcart.n.01", "cart", None),  # shopping cart
    ("golfcart.n.01", "cart", None),
    ("barrow.n.03", "wheelbarrow", None),
    ("airship.n.01", "blimp", None),
    ("balloon.n.01", "balloon", None),
    ("parachute.n.01", "parachute", None),
    ("car_wheel.n.01", "wheel", None),
    ("paddlewheel.n.01", "wheel", None),
    ("wing.n.02", "wing", None),  # ImageNet's photos are aircraft wings
    ("paddle.n.04", "paddle", None),
    # Music.
    ("guitar.n.01", "guitar", None),
    ("piano.n.01", "piano", None),
    ("violin.n.01", "violin", None),
    ("cello.n.01", "cello", None),
    ("banjo.n.01", "banjo", None),
    ("harp.n.01", "harp", None),
    ("drum.n.01", "drum", None),
    ("steel_drum.n.01", "drum", None),
    ("accordion.n.01", "accordion", None),
    ("harmonica.n.01", "harmonica", None),
    ("organ.n.05", "organ", None),
    ("flute.n.01", "flute", None),
    ("sax.n.02", "saxophone", None),
    ("cornet.n.01", "trumpet", None),
    ("trombone.n.01", "trombone", None),
    ("french_horn.n.01", "horn", None),
    ("microphone.n.01", "microphone", None),
    ("loudspeaker.n.01", "speaker", None),
    # Furniture and household things.
    ("bookcase.n.01", "bookshelf", None),
    ("cabinet.n.01", "cabinet", None),  # china cabinet, medicine chest
    ("file.n.03", "cabinet", None),
    ("wardrobe.n.01", "cabinet", None),
    ("chiffonier.n.01", "dresser", None),
    ("baby_bed.n.01", "crib", None),  # bassinet, cradle, crib
    ("pillow.n.01", "pillow", None),
    ("quilt.n.01", "blanket", None),
    ("lamp.n.02", "lamp", None),  # table lamp
    ("lampshade.n.01", "lamp", None),
    ("candle.n.01", "candle", None),
    ("torch.n.01", "torch", None),
    ("rug.n.01", "rug", None),
    ("mat.n.01", "mat", None),  # doormat
    ("curtain.n.01", "curtain", None),  # shower curtain, theater curtain
    ("window_shade.n.01", "window", None),
    ("window_screen.n.01", "window", None),
    ("door.n.01", "door", None),  # sliding door
    ("mirror.n.01", "mirror", None),  # car mirror
    ("fire_screen.n.01", "fireplace", None),  # ImageNet's photos are fireplaces
    ("bathtub.n.01", "tub", None),
    ("tub.n.02", "tub", None),
    ("towel.n.01", "towel", None),  # paper towel
    ("bath_towel.n.01", "towel", None),
    ("dishrag.n.01", "towel", None),
    ("toilet_tissue.n.01", "toilet paper", None),
    ("soap_dispenser.n.01", "soap", None),
    ("lotion.n.01", "lotion", None),
    ("perfume.n.02", "perfume", None),
    ("lipstick.n.01", "lipstick", None),
    ("face_powder.n.01", "makeup", None),
    ("dishwasher.n.01", "dishwasher", None),
    ("washer.n.03", "washer", None),
    ("vacuum.n.04", "vacuum", None),
    ("iron.n.04", "iron", None),
    ("electric_fan.n.01", "fan", None),
    ("space_heater.n.01", "heater", None),
    ("radiator.n.03", "radiator", None),
    ("coffee_maker.n.01", "coffee", None),  # espresso maker
    ("pan.n.01", "pan", None),  # frying pan, wok
    ("pot.n.01", "pot", None),  # caldron, coffeepot
    ("crock_pot.n.01", "pot", None),
    ("teapot.n.01", "teapot", None),
    ("pitcher.n.02", "jug", None),  # not "pitcher": CHAIR reads it as a person
    ("ladle.n.01", "ladle", None),
    ("spatula.n.01", "spatula", None),
    ("tray.n.01", "tray", None),
    ("bucket.n.01", "bucket", None),
    ("barrel.n.02", "barrel", None),
    ("rain_barrel.n.01", "barrel", None),
    ("basket.n.01", "basket", None),  # hamper, shopping basket
    ("box.n.01", "box", None),  # carton, crate, chest, pencil box
    ("bag.n.01", "bag", None),  # plastic bag, mailbag, sleeping bag
    ("ashcan.n.01", "trash", None),  # "a trash can"
    ("mailbox.n.01", "mailbox", None),
    ("envelope.n.01", "envelope", None),
    ("lock.n.01", "lock", None),  # padlock, combination lock
    ("chain.n.03", "chain", None),
    ("hook.n.04", "hook", None),
    ("broom.n.01", "broom", None),
    ("swab.n.02", "mop", None),
    # Tools, devices and machines.
    ("hammer.n.02", "hammer", None),
    ("ax.n.01", "axe", None),  # hatchet
    ("screwdriver.n.01", "screwdriver", None),
    ("screw.n.04", "screw", None),
    ("power_drill.n.01", "drill", None),
    ("chain_saw.n.01", "chainsaw", None),
    ("shovel.n.01", "shovel", None),
    ("plunger.n.03", "plunger", None),
    ("lawn_mower.n.01", "lawnmower", None),
    ("crane.n.04", "crane", None),
    ("pen.n.01", "pen", None),  # ballpoint, fountain pen, quill
    ("paintbrush.n.01", "brush", None),
    ("rubber_eraser.n.01", "eraser", None),
    ("rule.n.12", "ruler", None),
    ("scale.n.07", "scale", None),
    ("hourglass.n.01", "hourglass", None),
    ("sundial.n.01", "sundial", None),
    ("magnetic_compass.n.01", "compass", None),
    ("binoculars.n.01", "binoculars", None),
    ("radio_telescope.n.01", "telescope", None),
    ("projector.n.02", "projector", None),
    ("printer.n.03", "printer", None),
    ("typewriter_keyboard.n.01", "typewriter", None),
    ("ipod.n.01", "ipod", None),
    ("radio.n.03", "radio", None),
    ("joystick.n.02", "joystick", None),
    ("cash_machine.n.01", "atm", None),
    ("vending_machine.n.01", "machine", None),
    ("slot_machine.n.01", "machine", None),
    ("sewing_machine.n.01", "machine", None),
    ("lighter.n.02", "lighter", None),
    ("stethoscope.n.01", "stethoscope", None),
    ("syringe.n.01", "syringe", None),
    ("band_aid.n.01", "bandage", None),
    ("crutch.n.01", "crutch", None),
    ("stretcher.n.03", "stretcher", None),
    ("gun.n.01", "gun", None),  # rifle, assault rifle, revolver
    ("cannon.n.02", "cannon", None),
    ("shield.n.02", "shield", None),
    ("snorkel.n.01", "snorkel", None),
    ("whistle.n.04", "whistle", None),
    ("tripod.n.01", "tripod", None),
    ("camera.n.01", "camera", None),
    # Sports and play.
    ("weight.n.02", "weights", None),  # barbell, dumbbell
    ("puck.n.02", "puck", None),
    ("scoreboard.n.01", "scoreboard", None),
    ("swing.n.02", "swing", None),
    ("carousel.n.02", "carousel", None),
    ("puzzle.n.02", "puzzle", None),  # jigsaw, crossword
    ("maze.n.01", "maze", None),
    ("bubble.n.01", "bubble", None),
    # Structures and places.
    ("building.n.01", "building", None),  # boathouse, planetarium...
    ("restaurant.n.01", "restaurant", None),
    ("library.n.05", "library", None),
    ("bakery.n.01", "bakery", None),
    ("barbershop.n.01", "shop", None),
    ("mercantile_establishment.n.01", "store", None),  # grocery, toy, shoe, book... shops
    ("church.n.02", "church", None),
    ("mosque.n.01", "mosque", None),
    ("cinema.n.02", "theater", None),
    ("prison.n.01", "prison", None),
    ("barn.n.01", "barn", None),
    ("greenhouse.n.01", "greenhouse", None),
    ("castle.n.02", "castle", None),
    ("palace.n.04", "palace", None),
    ("tower.n.01", "tower", None),
    ("water_tower.n.01", "tower", None),
    ("beacon.n.03", "lighthouse", None),
    ("dome.n.04", "dome", None),
    ("roof.n.01", "roof", None),  # thatch, tile roof, vault
    ("tent.n.01", "tent", None),
    ("mobile_home.n.01", "trailer", None),
    ("birdhouse.n.01", "birdhouse", None),
    ("fountain.n.01", "fountain", None),
    ("bridge.n.01", "bridge", None),
    ("dam.n.01", "dam", None),
    ("dock.n.05", "dock", None),
    ("pier.n.03", "pier", None),
    ("fence.n.01", "fence", None),  # chainlink, picket, worm fence
    ("stone_wall.n.01", "wall", None),
    ("bannister.n.02", "railing", None),
    ("patio.n.01", "patio", None),
    ("stage.n.03", "stage", None),
    ("obelisk.n.01", "monument", None),
    ("megalith.n.01", "monument", None),
    ("triumphal_arch.n.01", "arch", None),
    ("flagpole.n.02", "flag", None),  # ImageNet's photos are flags
    ("pole.n.01", "pole", None),
    ("street_sign.n.01", "sign", None),
    ("spider_web.n.01", "web", None),
    # Landscapes.
    ("mountain.n.01", "mountain", None),  # alp, volcano
    ("cliff.n.01", "cliff", None),
    ("promontory.n.01", "cliff", None),
    ("valley.n.01", "valley", None),
    ("seashore.n.01", "beach", None),
    ("sandbar.n.01", "beach", None),
    ("lakeside.n.01", "lake", None),
    ("coral_reef.n.01", "coral", None),
    ("geyser.n.01", "geyser", None),
    # No word for these, though a target lies above them.
    ("home_theater.n.01", None, None),  # a theater in WordNet; ImageNet's photos are rooms
    ("apiary.n.01", None, None),  # a building in WordNet; ImageNet's photos are beehives
    ("safe.n.01", None, None),  # a box in WordNet; nobody calls a safe a box
)

# Caption words of more than one word that are not COCO category names. The tagger places
# single vocabulary words only, so it leaves these out; the table still names the object.
PHRASES = ("ice cream", "toilet paper")

# The kinds: (WordNet synset, kind). A kind is a word a caption can use for anything below it
# ("an animal", "some fruit", "a boat"), from a small fixed set: the level a caption falls back
# to when the classifier cannot tell which of several things it sees. Each word gets one kind,
# by the same walk from the word's first target synset (so golden retriever, whippet and dingo,
# all "dog", share the kind dog); a class takes its word's kind. Kinds nest (dogs and birds are
# animals, fruit is food, a boat is a vehicle): the JSON's "kinds" gives each kind the broader
# kind the walk finds above it. A kind of None stops the walk where WordNet files a word's
# synset under something a caption would not call it.
KINDS = (
    ("person.n.01", "person"),
    ("dog.n.01", "dog"),
    ("bird.n.01", "bird"),
    ("fish.n.01", "fish"),
    ("insect.n.01", "insect"),
    ("animal.n.01", "animal"),
    ("edible_fruit.n.01", "fruit"),
    ("vegetable.n.01", "vegetable"),
    ("beverage.n.01", "drink"),
    ("food.n.01", "food"),
    ("food.n.02", "food"),
    ("plant.n.02", "plant"),
    ("vessel.n.02", "boat"),
    ("vehicle.n.01", "vehicle"),  # before container: WordNet files wheeled vehicles under both
    ("conveyance.n.03", "vehicle"),  # trains, buses
    ("musical_instrument.n.01", "instrument"),
    ("clothing.n.01", "clothing"),
    ("footwear.n.02", "clothing"),  # shoes, boots
    ("furniture.n.01", "furniture"),
    ("appliance.n.02", "appliance"),
    ("sports_equipment.n.01", "sports equipment"),
    ("ball.n.01", "sports equipment"),
    ("plaything.n.01", "toy"),
    ("puzzle.n.02", "toy"),
    ("tool.n.01", "tool"),
    ("container.n.01", "container"),
    ("building.n.01", "building"),
    ("establishment.n.04", "building"),  # shops, prisons
    ("geological_formation.n.01", "place"),  # beaches, cliffs, valleys
    ("location.n.01", "place"),
    ("device.n.01", "device"),
    ("equipment.n.01", "device"),  # cameras, phones, screens
    ("corn.n.02", "vegetable"),  # a grain in WordNet
    ("ski.n.01", "sports equipment"),  # a runner in WordNet
    ("puck.n.02", "sports equipment"),  # a disk in WordNet
    ("sports_implement.n.01", "sports equipment"),  # rackets
    ("buckle.n.01", "clothing"),  # a fastener in WordNet; the word is "belt"
    ("radio.n.03", "device"),  # a communication system in WordNet
    ("menu.n.02", None),  # the fare in WordNet; ImageNet's photos are printed menus
    ("stretcher.n.03", None),  # a conveyance in WordNet
    ("pier.n.03", None),  # a support, so a device, in WordNet
    ("spider_web.n.01", None),  # a trap, so a device, in WordNet
    ("jack-o'-lantern.n.02", None),  # a lantern, so a device, in WordNet; the word is "pumpkin"
)


def wordnet_reader(wordnet_dir: Path, scratch: Path):
    """nltk's WordNet reader over WordNet's database files, copied into an nltk data folder
    with the `lexnames` file added (nltk reads only under its data path, links resolved)."""
    import nltk
    from nltk.corpus.reader.wordnet import WordNetCorpusReader

    corpus = scratch / "corpora" / "wordnet"
    corpus.mkdir(parents=True)
    for file in wordnet_dir.iterdir():  # data.noun, index.noun, noun.exc, index.sense, ...
        if file.is_file():
            shutil.copyfile(file, corpus / file.name)
    (corpus / "lexnames").write_text("".join(
        f"{i:02d}\t{name}\t{SYNTACTIC_CATEGORY[name.split('.')[0]]}\n"
        for i, name in enumerate(LEXNAMES)))
    nltk.data.path.insert(0, str(scratch))
    wn = WordNetCorpusReader(nltk.data.find("corpora/wordnet"), None)
    if wn.get_version() != "3.0" or wn.synset_from_pos_and_offset("n", 2123045).name() != "tabby.n.01":
        raise RuntimeError(f"{wordnet_dir} is not WordNet 3.0")
    return wn


def imagenet_synsets() -> list[str]:
    """timm's ImageNet-1k class order: one WordNet noun id (n02123045) per class."""
    from timm.data import ImageNetInfo
    info = ImageNetInfo()
    return [info.index_to_label_name(i) for i in range(info.num_classes())]


def imagenet_labels() -> list[str]:
    from captioner.imagenet import imagenet_names
    return list(imagenet_names())


def hypernym_levels(synset):
    """The synset, then its hypernyms (instance hypernyms too), then theirs: one list a step."""
    level, seen = [synset], {synset}
    while level:
        yield level
        parents = []
        for s in level:
            for parent in s.hypernyms() + s.instance_hypernyms():
                if parent not in seen:
                    seen.add(parent)
                    parents.append(parent)
        level = parents


def closest_target(synset, rank: dict[str, int]) -> tuple[object, int] | None:
    """The nearest synset named in `rank` (name -> place in its list), the first listed of
    equally near ones: (target, steps)."""
    for depth, level in enumerate(hypernym_levels(synset)):
        found = [s for s in level if s.name() in rank]
        if found:
            return min(found, key=lambda s: rank[s.name()]), depth
    return None


def check_targets(wn, categories: dict[str, tuple[str, ...]]) -> None:
    """Fail loudly on a misspelt synset, a word with two categories, a word that CHAIR's list
    gives another category than the table does, or a word that is not one lower-case word."""
    category_of: dict[str, str | None] = {}
    synonym_of = {w: c for c, words in categories.items() for w in words}
    for name, word, category in TARGETS:
        wn.synset(name)
        if category is not None and category not in categories:
            raise ValueError(f"{name}: {category!r} is not a COCO category")
        if word is None:
            continue
        if category_of.setdefault(word, category) != category:
            raise ValueError(f"{word!r} has two categories: {category_of[word]!r}, {category!r}")
        if synonym_of.get(word, category) != category:
            raise ValueError(f"{name}: CHAIR counts {word!r} as {synonym_of[word]!r}")
        if word != word.lower() or (" " in word and word not in categories
                                    and word not in PHRASES):
            raise ValueError(f"{name}: {word!r} is not a caption word")
    missing = set(categories) - {c for _, _, c in TARGETS} - set(NOT_IN_WORDNET)
    if missing:
        raise ValueError(f"COCO categories without a target synset: {sorted(missing)}")
    for name, _ in KINDS:
        wn.synset(name)


def kind_parents(wn) -> dict[str, str | None]:
    """Each kind -> the nearest other kind above its (first) synset, or None at the top."""
    rank = {name: i for i, (name, kind) in enumerate(KINDS) if kind is not None}
    kinds = dict(KINDS)
    parents: dict[str, str | None] = {}
    for name, kind in KINDS:
        if kind is None or kind in parents:
            continue
        parents[kind] = None
        synset = wn.synset(name)
        for level in list(hypernym_levels(synset))[1:]:
            found = [s for s in level if s.name() in rank and kinds[s.name()] != kind]
            if found:
                parents[kind] = kinds[min(found, key=lambda s: rank[s.name()]).name()]
                break
    return parents


def build(wn, synsets: list[str], labels: list[str], synonyms: str) -> dict:
    categories, people = parse_synonyms(synonyms)
    check_targets(wn, categories)
    targets = {name: (word, category) for name, word, category in TARGETS}
    target_rank = {name: i for i, (name, _, _) in enumerate(TARGETS)}
    kinds = dict(KINDS)
    kind_rank = {name: i for i, (name, _) in enumerate(KINDS)}
    word_kind = {}
    for word, synset in word_synsets(wn).items():
        found = closest_target(synset, kind_rank)
        word_kind[word] = kinds[found[0].name()] if found else None
    classes = {}
    for index, (wnid, label) in enumerate(zip(synsets, labels)):
        found = closest_target(wn.synset_from_pos_and_offset("n", int(wnid[1:])), target_rank)
        if found is None or targets[found[0].name()][0] is None:
            continue
        target, depth = found
        word, category = targets[target.name()]
        classes[str(index)] = {"label": label, "word": word, "category": category,
                               "kind": word_kind[word], "depth": depth,
                               "target": target.name()}
    return {
        "about": "ImageNet-1k class index -> caption word, and COCO's categories with their "
                 "synonyms. Generated by scripts/build_object_words.py from WordNet 3.0 and "
                 "captioner/data/coco_synonyms.txt (CHAIR's list, Rohrbach et al. 2018); do "
                 "not edit. depth: hypernym steps from the class's synset to the target. "
                 "kind: the word's kind, the coarser word a caption can fall back to (animal, "
                 "fruit, boat, ...), or null; kinds: each kind's broader kind (dog -> "
                 "animal), null at the top. similar: each word's nearest other words in WordNet, nearest first.",
        "people": people,
        "categories": {name: list(words) for name, words in categories.items()},
        "kinds": kind_parents(wn),
        "similar": similar_words(wn),
        "classes": classes,
    }


def word_synsets(wn) -> dict[str, object]:
    """Each word's first target synset: the concept the word names."""
    synsets = {}
    for name, word, _ in TARGETS:
        if word is not None:
            synsets.setdefault(word, wn.synset(name))
    return synsets


def similar_words(wn, keep: int = 8) -> dict[str, list[str]]:
    """Each target word's nearest other target words by WordNet path length (ties by name):
    the word a new word borrows its weights from (DCC/NOC-style transfer, training.vocab_growth)
    is the first of these a vocabulary has ("zebra" -> "horse")."""
    synsets = word_synsets(wn)
    similar = {}
    for word, synset in synsets.items():
        distances = []
        for other, other_synset in synsets.items():
            if other != word:
                distance = synset.shortest_path_distance(other_synset)
                if distance is not None:
                    distances.append((distance, other))
        similar[word] = [other for _, other in sorted(distances)[:keep]]
    return similar


def to_json(table: dict) -> str:
    """JSON with one line per category and per class, so that diffs read row by row."""
    def rows(mapping: dict) -> str:
        return ",\n".join(f"  {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}"
                           for k, v in mapping.items())
    return (f'{{\n "about": {json.dumps(table["about"])},\n "people": {json.dumps(table["people"])},\n'
            f' "categories": {{\n{rows(table["categories"])}\n }},\n'
            f' "kinds": {{\n{rows(table["kinds"])}\n }},\n'
            f' "similar": {{\n{rows(table["similar"])}\n }},\n'
            f' "classes": {{\n{rows(table["classes"])}\n }}\n}}\n')


def summary(table: dict) -> str:
    classes = table["classes"].values()
    words = Counter(c["word"] for c in classes)
    per_category = Counter(c["category"] for c in classes)
    lines = [f"{len(table['classes'])} of 1000 ImageNet classes -> {len(words)} words"]
    lines += [f"  {category}: {per_category.get(category, 0)}" for category in table["categories"]]
    lines.append(f"  (outside COCO): {per_category.get(None, 0)}")
    per_kind = Counter(c["kind"] for c in classes)
    lines.append("kinds: " + ", ".join(f"{k} {n}" for k, n in per_kind.most_common()))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(allow_abbrev=False, description=__doc__.splitlines()[0])
    parser.add_argument("--wordnet", default="/usr/share/wordnet",
                        help="folder with WordNet 3.0's data.noun, index.noun, ...")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as scratch:
        wn = wordnet_reader(Path(args.wordnet), Path(scratch))
        table = build(wn, imagenet_synsets(), imagenet_labels(), SYNONYMS.read_text("utf-8"))
    atomic_write_text(OUT, to_json(table))
    print(summary(table))
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
